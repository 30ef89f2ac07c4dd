/**
 * The JSON front door of the scenario loader: a `.json` scenario (same schema as the YAML one) is read
 * into the same document nodes the YAML parser makes — mappings, lists and scalars with their source
 * offsets — so the loader's sections read both alike and an error names the file, line, column and key
 * in the same words. Why a parser of our own: `JSON.parse` keeps no positions, and YAML's parser (JSON is
 * YAML) takes many times longer on a generated experiment of 100,000 flows — most of its build.
 *
 * RFC 8259 exactly: one value, no comments, no trailing commas; a key given twice in one object is
 * refused, as the YAML loader refuses it.
 */
import { LineCounter, Pair, Scalar, YAMLMap, YAMLSeq, type YamlNode } from './yaml.js';

/** A JSON syntax error at `offset`. */
export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
    this.name = 'JsonSyntaxError';
  }
}

/** Objects of up to this many keys find a repeated key by a search of the keys so far. */
const SMALL_OBJECT = 16;

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/*
 * The nodes are made from one instance of each of YAML's node classes as a prototype: what tells their
 * kind (`isMap`, `isScalar`, …) is a property each constructor defines on the instance with
 * `Object.defineProperty`, and found through the prototype just as well. A constructor call per node took
 * most of the parse (two million nodes and more for a 100,000-flow experiment), and so would a range
 * array per scalar.
 */
const WORDS: ReadonlyArray<[string, boolean | null]> = [
  ['true', true],
  ['false', false],
  ['null', null],
];
const SCALAR = new Scalar(null);
const MAP = new YAMLMap();
const SEQ = new YAMLSeq();
const PAIR = new Pair(null);
/** A scalar's start offset; its `range` is computed from it when asked (the loader asks on errors only). */
interface Placed {
  at: number;
}
Object.defineProperty(SCALAR, 'range', {
  get(this: Placed): [number, number, number] {
    return [this.at, this.at, this.at];
  },
});

function hasKey(items: ReadonlyArray<Pair<Scalar, YamlNode>>, k: string): boolean {
  for (let j = 0; j < items.length; j++) if (items[j]!.key.value === k) return true;
  return false;
}

function scalar(value: unknown, start: number): Scalar {
  const n = Object.create(SCALAR) as Scalar & Placed;
  n.value = value;
  n.at = start;
  return n;
}

/** Parses JSON text into document nodes (offsets in `range[0]`), and the line starts of the text. */
export function parseJsonDocument(text: string): { contents: YamlNode; lc: LineCounter } {
  const lc = new LineCounter();
  lc.addNewLine(0);
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lc.addNewLine(i + 1);
  const p = new JsonParser(text);
  p.ws();
  const contents = p.value();
  p.ws();
  if (p.i < text.length) throw new JsonSyntaxError('text after the value', p.i);
  return { contents, lc };
}

class JsonParser {
  i = 0;
  constructor(private readonly s: string) {}

  ws(): void {
    const s = this.s;
    let i = this.i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    this.i = i;
  }

  private expected(what: string): never {
    const c = this.s[this.i];
    throw new JsonSyntaxError(`expected ${what}, got ${c === undefined ? 'the end of the text' : JSON.stringify(c)}`, this.i);
  }

  value(): YamlNode {
    const s = this.s;
    const start = this.i;
    const c = s.charCodeAt(start);
    if (c === 0x7b || c === 0x5b) {
      const node = c === 0x7b ? this.object() : this.array();
      node.range = [start, this.i, this.i];
      return node;
    }
    if (c === 0x22) return scalar(this.string(), start);
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      // An integer of up to 15 digits (most of a generated experiment's numbers) is read by hand: the
      // regex's match array and string per number were 79 MB of garbage for 100,000 flows. Anything
      // else (a fraction, an exponent, a leading zero before a digit) goes to the regex, as before.
      let i = c === 0x2d ? start + 1 : start;
      const d0 = s.charCodeAt(i);
      if (d0 >= 0x30 && d0 <= 0x39) {
        let v = d0 - 0x30;
        i++;
        if (d0 !== 0x30) for (let d = s.charCodeAt(i); d >= 0x30 && d <= 0x39 && i - start < 15; d = s.charCodeAt(++i)) v = v * 10 + (d - 0x30);
        const n = s.charCodeAt(i);
        if (n !== 0x2e && n !== 0x65 && n !== 0x45 && !(n >= 0x30 && n <= 0x39)) {
          this.i = i;
          return scalar(c === 0x2d ? -v : v, start);
        }
      }
      NUMBER.lastIndex = start;
      const m = NUMBER.exec(s);
      if (m === null) this.expected('a number');
      this.i = start + m[0].length;
      return scalar(Number(m[0]), start);
    }
    for (const [word, v] of WORDS) {
      if (s.startsWith(word, start)) {
        this.i += word.length;
        return scalar(v, start);
      }
    }
    this.expected('a JSON value');
  }

  private object(): YAMLMap {
    const s = this.s;
    const map = Object.create(MAP) as YAMLMap;
    map.items = [];
    this.i++;
    this.ws();
    if (s.charCodeAt(this.i) === 0x7d) {
      this.i++;
      return map;
    }
    // A key given twice: the keys so far are searched while there are few (a flow has about eight, and a
    // set per object cost a 100,000-flow experiment 100 MB of garbage); a set takes over past that.
    let keys: Set<string> | null = null;
    for (;;) {
      if (s.charCodeAt(this.i) !== 0x22) this.expected('a key in double quotes');
      const at = this.i;
      const k = this.string();
      const items = map.items as Array<Pair<Scalar, YamlNode>>;
      if (keys === null && items.length >= SMALL_OBJECT) keys = new Set(items.map((p) => p.key.value as string));
      if (keys !== null ? keys.has(k) : hasKey(items, k)) throw new JsonSyntaxError(`the key ${JSON.stringify(k)} a second time in one object`, at);
      keys?.add(k);
      const key = scalar(k, at);
      this.ws();
      if (s.charCodeAt(this.i) !== 0x3a) this.expected('":"');
      this.i++;
      this.ws();
      const pair = Object.create(PAIR) as Pair<Scalar, YamlNode>;
      pair.key = key;
      pair.value = this.value();
      map.items.push(pair);
      this.ws();
      const c = s.charCodeAt(this.i);
      this.i++;
      if (c === 0x7d) return map;
      if (c !== 0x2c) {
        this.i--;
        this.expected('"," or "}"');
      }
      this.ws();
    }
  }

  private array(): YAMLSeq {
    const s = this.s;
    const seq = Object.create(SEQ) as YAMLSeq;
    seq.items = [];
    this.i++;
    this.ws();
    if (s.charCodeAt(this.i) === 0x5d) {
      this.i++;
      return seq;
    }
    for (;;) {
      seq.items.push(this.value());
      this.ws();
      const c = s.charCodeAt(this.i);
      this.i++;
      if (c === 0x5d) return seq;
      if (c !== 0x2c) {
        this.i--;
        this.expected('"," or "]"');
      }
      this.ws();
    }
  }

  /** A string at `i` (its opening quote); escapes are decoded by `JSON.parse` of just that string. */
  private string(): string {
    const s = this.s;
    const start = this.i;
    let escaped = false;
    for (let i = start + 1; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        this.i = i + 1;
        if (!escaped) return s.slice(start + 1, i);
        try {
          return JSON.parse(s.slice(start, i + 1)) as string;
        } catch {
          throw new JsonSyntaxError('a bad escape in a string', start);
        }
      }
      if (c === 0x5c) {
        escaped = true;
        i++;
      } else if (c < 0x20) throw new JsonSyntaxError('a control character in a string (write it as an escape)', i);
    }
    throw new JsonSyntaxError('a string that is not closed', start);
  }
}
