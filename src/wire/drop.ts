/**
 * The closed set of reasons a frame is dropped. Parsers return one instead of throwing; datapath stages
 * count drops per reason and port. Later layers append their reasons here, so the set stays one list
 * with one counter slot each (`DROP_REASON_COUNT`).
 *
 * `DropReason[n]` gives the name (TypeScript numeric enums map both ways), which is what reports print.
 */
export enum DropReason {
  // Ethernet and tags
  EthTruncated = 1,
  VlanTruncated,
  VlanTooManyTags,
  // ARP
  ArpTruncated,
  ArpUnsupportedHardware,
  // IPv4
  Ipv4Truncated,
  Ipv4BadVersion,
  Ipv4BadHeaderLen,
  Ipv4BadTotalLen,
  Ipv4BadChecksum,
  // IPv6 and its extension headers
  Ipv6Truncated,
  Ipv6BadVersion,
  Ipv6BadPayloadLen,
  Ipv6ExtTruncated,
  Ipv6TooManyExtHeaders,
  Ipv6FragTruncated,
  // ICMP
  Icmpv4Truncated,
  Icmpv4BadChecksum,
  Icmpv6Truncated,
  Icmpv6BadChecksum,
  Icmpv6BadNdOption,
  // UDP and TCP
  UdpTruncated,
  UdpBadLength,
  UdpBadChecksum,
  TcpTruncated,
  TcpBadDataOffset,
  TcpBadOption,
  TcpBadChecksum,
  // Tunnels
  VxlanTruncated,
  VxlanBadFlags,
  GeneveTruncated,
  GeneveBadVersion,
  GeneveBadOptionLen,
  GeneveOptionTruncated,
  GreTruncated,
  GreBadVersion,
  GreUnsupportedFlags,
  // ESP layout (cryptographic failures come with the crypto layer)
  EspTruncated,
  EspBadTrailer,
  // Frames as a whole
  FrameTooShort,
  FrameTooLong,
  TooManyLayers,
  // Datapath: ports and switching
  PortDown,
  VlanNotAllowed,
  SrcMacGroup,
  SameAsIngress,
  NoEgressPort,
  PoolExhausted,
  QueueFull,
  MtuExceeded,
  HeadroomShort,
  // Datapath: gateway routing
  NoRoute,
  NeighborUnresolved,
  TtlExceeded,
  GatewayNotHandled,
  // Datapath: tunnel ports
  TunnelNotForUs,
  TunnelFragment,
  UnknownVni,
  UnknownVtep,
  RoutedNotForGateway,
  UdpZeroChecksumV6,
  GeneveNotEthernet,
  GeneveUnknownCriticalOption,
}

/** Size for per-reason counter arrays indexed by `DropReason`. */
export const DROP_REASON_COUNT: number = Object.values(DropReason).filter((v) => typeof v === 'number').length + 1;

/** The reason's name, e.g. `Ipv4BadChecksum`. */
export function dropReasonName(r: DropReason): string {
  return DropReason[r] ?? `Unknown(${r})`;
}
