/**
 * The one place seine imports its YAML parser (eemeli/yaml v2, which keeps every node's source range), so
 * the scenario loader depends on a narrow surface: parse a document with a line counter, tell node kinds
 * apart, make them (json.ts, the JSON front door), stringify plain data.
 */
export { LineCounter, Pair, Scalar, YAMLMap, YAMLSeq, isAlias, isMap, isPair, isScalar, isSeq, parseDocument, stringify } from 'yaml';
export type { Document, Node as YamlNode } from 'yaml';
