/**
 * Structured logs: one JSON object per line on stderr (`time`, `level`, `msg`, then the event's
 * fields), so `journalctl -o cat | jq` or a log shipper reads them as they are.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export class Logger {
  constructor(
    private readonly fields: Record<string, unknown> = {},
    private readonly min: LogLevel = 'info',
    private readonly out: (line: string) => void = (l) => process.stderr.write(l),
  ) {}

  child(fields: Record<string, unknown>): Logger {
    return new Logger({ ...this.fields, ...fields }, this.min, this.out);
  }

  log(level: LogLevel, msg: string, extra: Record<string, unknown> = {}): void {
    if (RANK[level] < RANK[this.min]) return;
    this.out(
      `${JSON.stringify({ time: new Date().toISOString(), level, msg, ...this.fields, ...extra }, (_k, v: unknown) => (v instanceof Error ? v.message : v))}\n`,
    );
  }

  debug(msg: string, extra?: Record<string, unknown>): void {
    this.log('debug', msg, extra);
  }
  info(msg: string, extra?: Record<string, unknown>): void {
    this.log('info', msg, extra);
  }
  warn(msg: string, extra?: Record<string, unknown>): void {
    this.log('warn', msg, extra);
  }
  error(msg: string, extra?: Record<string, unknown>): void {
    this.log('error', msg, extra);
  }
}
