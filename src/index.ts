/**
 * seine's public API. Internals (anything not re-exported here) may change without notice.
 */
export * from './wire/addr.js';
export * from './wire/bytes.js';
export * from './wire/checksum.js';
export * from './wire/drop.js';
export * from './wire/ethernet.js';
export * from './wire/arp.js';
export * from './wire/ipproto.js';
export * from './wire/ipv4.js';
export * from './wire/ipv6.js';
export * from './wire/icmp.js';
export * from './wire/icmpv4.js';
export * from './wire/icmpv6.js';
export * from './wire/udp.js';
export * from './wire/tcp.js';
export * from './wire/vxlan.js';
export * from './wire/geneve.js';
export * from './wire/gre.js';
export * from './wire/esp.js';
export * from './wire/stack.js';
export * from './packet/buf.js';
export * from './packet/parse.js';
export * from './packet/addrtable.js';
export * from './overlay/template.js';
export * from './overlay/flowhash.js';
export * from './overlay/tunnel.js';
export * from './datapath/device.js';
export * from './datapath/port.js';
export * from './datapath/mactable.js';
export * from './datapath/gateway.js';
export * from './datapath/trace.js';
export * from './datapath/bridge.js';
export * from './datapath/observe.js';
export * from './capture/index.js';
export { decodeFrame, decodeLayers, summarize, type DecodedFrame, type DecodedLayer, type FieldValue } from './cli/decode.js';
export * from './mtu/overhead.js';
export * from './mtu/fragment.js';
export * from './mtu/reassembly.js';
export * from './mtu/icmp.js';
export * from './mtu/mss.js';
export * from './esp/aead.js';
export * from './esp/sa.js';
export * from './esp/esp.js';
export * from './esp/keys.js';
export * from './esp/journal.js';
export * from './esp/sadb.js';
export * from './esp/hello.js';
export * from './node/config.js';
export * from './node/build.js';
export * from './sim/engine.js';
export * from './sim/link.js';
export * from './sim/host.js';
export {
  TcpConnection,
  TcpFlow,
  TcpFlowStats,
  TcpListener,
  tcpHeaderBytes,
  tcpPayloadByte,
  TCP_INITIAL_RTO_NS,
  TCP_MAX_RTO_NS,
  TCP_MIN_RTO_NS,
  TCP_WINDOW,
  type TcpListenerStats,
  type TcpSendOptions,
  type TcpState,
} from './sim/tcp.js';
export { loadReplay, type ReplaySource, type ReplayTrace } from './scenario/replay.js';
export { loadScenario, parseScenario, ScenarioError, type Scenario } from './scenario/scenario.js';
export { Fabric, Uplink, type FabricStats } from './sim/fabric.js';
export {
  Cluster,
  SimBuildError,
  formatReport,
  counterValue,
  type ClusterOptions,
  type Report,
  type FlowResult,
  type PathResult,
  type ExpectResult,
} from './sim/cluster.js';
export { traceScenario, formatTrace, type TraceRequest, type TraceResult, type TraceStep, type TraceProto } from './sim/tracer.js';
export {
  sweep,
  configs as overheadConfigs,
  tcpSweep,
  analyticCell,
  distributionOf,
  sizePoint,
  ENCAPSULATIONS,
  ENCRYPTIONS,
  IMIX_POINT,
  type Cell as OverheadCell,
  type Config as OverheadConfig,
  type Figures as OverheadFigures,
  type SizePoint,
  type TcpPoint,
} from './study/overhead.js';
export { toCsv as overheadCsv, plots as overheadPlots, type OverheadReport } from './study/overhead-output.js';
export { lineChart, type LineChart, type LineSeries } from './plot/svg.js';
