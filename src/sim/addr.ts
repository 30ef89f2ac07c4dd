/**
 * A destination address as simulated hosts keep it: IPv4 as a number, IPv6 as 16 bytes.
 */
import { ipv4FromString, ipv6FromString } from '../wire/bytes.js';

/** A parsed destination. @internal */
export type Addr = { family: 4; v4: number; v6: null } | { family: 6; v4: 0; v6: Uint8Array };

/** An IPv4 or IPv6 address; a RangeError naming `what` otherwise. */
export function parseAddr(s: string, what: string): Addr {
  const v4 = ipv4FromString(s);
  if (v4 !== null) return { family: 4, v4, v6: null };
  const v6 = ipv6FromString(s);
  if (v6 !== null) return { family: 6, v4: 0, v6 };
  throw new RangeError(`${what}: "${s}" is not an IPv4 or IPv6 address`);
}
