/**
 * IP protocol numbers (the IPv4 protocol field, IPv6's next header), from IANA's "Assigned Internet
 * Protocol Numbers": the one place they are written. IPv6 extension-header numbers are in ipv6.ts.
 */
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_GRE = 47;
export const IPPROTO_ESP = 50;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;
/** Not a protocol on the wire: the raw-socket protocol that sends whole IP packets (ip(7)). */
export const IPPROTO_RAW = 255;
