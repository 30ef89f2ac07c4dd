/**
 * What an overlay adds to every packet, and the pod MTU that follows: the one place seine computes it
 * (the datapath's MTU checks, the scenario files and the README's table all come from here).
 *
 * The pod MTU is the largest inner IP packet whose encapsulated outer IP packet still fits the underlay
 * MTU. The fixed part of the overhead is the outer IP header, the UDP header (VXLAN, Geneve, ESP-in-UDP),
 * the tunnel header and the inner Ethernet header the tunnel carries. ESP (RFC 4303, transport mode over
 * the outer IP packet, as Antrea's and OVS's IPsec use it) adds its header, the IV, padding, the 2-byte
 * trailer and the ICV; the padding depends on the length (payload + padding + trailer end on a multiple
 * of max(block size, 4)), so `overheadFor` takes the inner length and `podMtu` searches the largest that
 * fits. It agrees with Linux's `esp4_get_mtu`/`esp6_get_mtu`, which the tests recompute independently.
 *
 * Pod MTUs are capped at 65,000: kind nodes come with a 65,535-byte loopback-like MTU, and a pod MTU
 * near 64 KiB broke throughput entirely in Antrea (TCP segments no NIC offload can split).
 */
import { ESP_HEADER_LEN, ESP_TRAILER_LEN, ESP_UDP_PORT, espPadLen } from '../wire/esp.js';
import { ETH_HEADER_LEN } from '../wire/ethernet.js';
import { GENEVE_HEADER_LEN, GENEVE_MAX_OPTIONS_LEN } from '../wire/geneve.js';
import { GRE_HEADER_LEN } from '../wire/gre.js';
import { IPV4_HEADER_LEN } from '../wire/ipv4.js';
import { IPV6_HEADER_LEN } from '../wire/ipv6.js';
import { UDP_HEADER_LEN } from '../wire/udp.js';
import { VXLAN_HEADER_LEN } from '../wire/vxlan.js';

export type OverlayKind = 'vxlan' | 'geneve' | 'gre';
export type EspCipher = 'aes-gcm-128' | 'aes-gcm-256' | 'chacha20-poly1305';

/** The layout facts of an ESP cipher that decide its overhead. */
export interface EspCipherInfo {
  /** Bytes of IV carried in each packet. */
  ivLen: number;
  /** Bytes of integrity check value (the AEAD tag). */
  icvLen: number;
  /** Cipher block size for padding (1 for stream-like AEADs: padding then only aligns to 4 bytes). */
  blockSize: number;
  /** Key length in bytes, salt excluded. */
  keyLen: number;
  /** Salt (nonce prefix) taken from the keying material: RFC 4106 §8.1 and RFC 7634 §4 both use 4 bytes. */
  saltLen: number;
}

/** AES-GCM with a 16-byte ICV (RFC 4106) and ChaCha20-Poly1305 (RFC 7634): 8-byte IV, 16-byte ICV, no block padding. */
export const ESP_CIPHERS: Readonly<Record<EspCipher, EspCipherInfo>> = {
  'aes-gcm-128': { ivLen: 8, icvLen: 16, blockSize: 1, keyLen: 16, saltLen: 4 },
  'aes-gcm-256': { ivLen: 8, icvLen: 16, blockSize: 1, keyLen: 32, saltLen: 4 },
  'chacha20-poly1305': { ivLen: 8, icvLen: 16, blockSize: 1, keyLen: 32, saltLen: 4 },
};

export interface EspOverheadSpec {
  cipher: EspCipher;
  /** ESP-in-UDP (RFC 3948, UDP port 4500) for paths with NAT: 8 more bytes. Default false. */
  udpEncap?: boolean;
}

export interface OverheadSpec {
  tunnel: OverlayKind;
  /** Underlay IP version. */
  underlay: 4 | 6;
  /** Geneve: bytes of options including their 4-byte option headers (a multiple of 4, at most 252). */
  geneveOptionBytes?: number;
  /** GRE: the key field is present (as with Antrea's and OVS's GRE ports: an 8-byte header). Default true. */
  greKey?: boolean;
  /** ESP between the nodes, or none. */
  esp?: EspOverheadSpec | null;
  /**
   * Instead of the exact ESP overhead, a fixed allowance in bytes for it, as Antrea reserves 38 bytes
   * for IPsec whatever the cipher. Ignored when `esp` is given.
   */
  espAllowance?: number;
}

/** The largest pod MTU seine sets (see the module comment). */
export const POD_MTU_CAP = 65000;

function check(spec: OverheadSpec): void {
  if (spec.tunnel !== 'vxlan' && spec.tunnel !== 'geneve' && spec.tunnel !== 'gre')
    throw new RangeError(`overhead: tunnel ${String(spec.tunnel)} is not vxlan, geneve or gre`);
  if (spec.underlay !== 4 && spec.underlay !== 6) throw new RangeError(`overhead: underlay ${String(spec.underlay)} is not 4 or 6`);
  const g = spec.geneveOptionBytes ?? 0;
  if (!Number.isInteger(g) || g < 0 || g % 4 !== 0 || g > GENEVE_MAX_OPTIONS_LEN)
    throw new RangeError(`overhead: geneveOptionBytes ${g} is not a multiple of 4 in 0-${GENEVE_MAX_OPTIONS_LEN}`);
  if (g > 0 && spec.tunnel !== 'geneve') throw new RangeError('overhead: geneveOptionBytes apply to geneve only');
  if (spec.esp != null && ESP_CIPHERS[spec.esp.cipher] === undefined)
    throw new RangeError(`overhead: ESP cipher ${String(spec.esp.cipher)} is not one of ${Object.keys(ESP_CIPHERS).join(', ')}`);
  const a = spec.espAllowance;
  if (a !== undefined && !(Number.isInteger(a) && a >= 0 && a <= 1024)) throw new RangeError(`overhead: espAllowance ${a} is not an integer in 0-1024`);
}

/** Outer IP header length of the underlay. */
export function outerIpLen(underlay: 4 | 6): number {
  return underlay === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
}

/**
 * The fixed overhead, ESP aside: outer IP + (UDP) + tunnel header (+ Geneve options) + the inner
 * Ethernet header. VXLAN 50 and Geneve 50 over IPv4, GRE with a key 42; 20 more over IPv6.
 */
export function tunnelOverhead(spec: OverheadSpec): number {
  check(spec);
  let n = outerIpLen(spec.underlay) + ETH_HEADER_LEN;
  if (spec.tunnel === 'vxlan') n += UDP_HEADER_LEN + VXLAN_HEADER_LEN;
  else if (spec.tunnel === 'geneve') n += UDP_HEADER_LEN + GENEVE_HEADER_LEN + (spec.geneveOptionBytes ?? 0);
  else n += GRE_HEADER_LEN + (spec.greKey === false ? 0 : 4);
  return n;
}

/**
 * ESP's bytes around an ESP payload (the outer IP payload, in transport mode) of `payloadLen` bytes:
 * header (SPI, sequence), IV, padding, pad length and next header, ICV, and 8 bytes of UDP for ESP-in-UDP.
 */
export function espOverhead(esp: EspOverheadSpec, payloadLen: number): number {
  const c = ESP_CIPHERS[esp.cipher];
  return ESP_HEADER_LEN + c.ivLen + espPadLen(payloadLen, c.blockSize) + ESP_TRAILER_LEN + c.icvLen + (esp.udpEncap === true ? UDP_HEADER_LEN : 0);
}

/** ESP's largest overhead for a cipher (the most padding). */
export function espMaxOverhead(esp: EspOverheadSpec): number {
  const c = ESP_CIPHERS[esp.cipher];
  return ESP_HEADER_LEN + c.ivLen + Math.max(c.blockSize, 4) - 1 + ESP_TRAILER_LEN + c.icvLen + (esp.udpEncap === true ? UDP_HEADER_LEN : 0);
}

/** Everything the overlay adds to an inner IP packet of `innerLen` bytes (exact, ESP padding included). */
export function overheadFor(spec: OverheadSpec, innerLen: number): number {
  const fixed = tunnelOverhead(spec);
  if (spec.esp != null) return fixed + espOverhead(spec.esp, fixed - outerIpLen(spec.underlay) + innerLen);
  return fixed + (spec.espAllowance ?? 0);
}

/**
 * The largest inner IP packet whose outer packet fits `underlayMtu`, uncapped, or 0 when none does: what
 * a tunnel checks each packet against. ESP padding makes the overhead depend on the length; inner +
 * overhead(inner) never decreases as the inner length grows, so walking down from the ESP-free bound
 * (at most 3 steps) finds the largest that fits.
 */
export function pathMtu(underlayMtu: number, spec: OverheadSpec): number {
  let x = underlayMtu - tunnelOverhead(spec) - (spec.esp == null ? (spec.espAllowance ?? 0) : 0);
  while (x > 0 && x + overheadFor(spec, x) > underlayMtu) x--;
  return Math.max(x, 0);
}

/**
 * The pod MTU: `pathMtu` capped at `POD_MTU_CAP`. Throws a RangeError for an underlay MTU outside
 * 68-65535 or too small to carry anything (a pod MTU below 576 over IPv4 or 1280 over IPv6 inner
 * traffic is the caller's to refuse; this returns it).
 */
export function podMtu(underlayMtu: number, spec: OverheadSpec): number {
  if (!Number.isInteger(underlayMtu) || underlayMtu < 68 || underlayMtu > 65535)
    throw new RangeError(`overhead: underlay MTU ${underlayMtu} is not an integer in 68-65535`);
  const x = pathMtu(underlayMtu, spec);
  if (x <= 0) throw new RangeError(`overhead: an underlay MTU of ${underlayMtu} leaves no room for a ${spec.tunnel} packet`);
  return Math.min(POD_MTU_CAP, x);
}

/** A short name for a spec, e.g. `geneve+8B/ipv6 + esp aes-gcm-128 (udp)`, for tables and errors. */
export function describeOverhead(spec: OverheadSpec): string {
  const opts = spec.geneveOptionBytes ? `+${spec.geneveOptionBytes}B` : '';
  const esp =
    spec.esp != null
      ? ` + esp ${spec.esp.cipher}${spec.esp.udpEncap === true ? ` (udp ${ESP_UDP_PORT})` : ''}`
      : spec.espAllowance !== undefined
        ? ` + ${spec.espAllowance}B IPsec allowance`
        : '';
  return `${spec.tunnel}${opts}${spec.tunnel === 'gre' && spec.greKey === false ? ' (no key)' : ''}/ipv${spec.underlay}${esp}`;
}
