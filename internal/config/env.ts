/** Typed readers for configuration from environment variables; a bad value fails at boot. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/**
 * The end of a factory's exhaustive switch over a configured choice: the compiler
 * proves every value is handled, and a value that slips past it still fails at boot.
 */
export function unknownChoice(what: string, value: never): never {
  throw new ConfigError(`unknown ${what}: ${String(value)}`);
}

export function str(name: string, def: string): string {
  const v = process.env[name];
  return v === undefined || v === "" ? def : v;
}

export function int(name: string, def: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name}=${raw}: expected an integer in [${min}, ${max}]`);
  return n;
}

export function list(name: string, def: string[]): string[] {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return def;
  return raw.split(",").map((s) => s.trim()).filter(Boolean);
}

export function oneOf<T extends string>(name: string, def: T, allowed: readonly T[]): T {
  const v = str(name, def);
  if (!allowed.includes(v as T)) throw new ConfigError(`${name}=${v}: expected one of ${allowed.join(", ")}`);
  return v as T;
}

export function bool(name: string, def: boolean): boolean {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return def;
  if (["1", "true", "yes"].includes(raw)) return true;
  if (["0", "false", "no"].includes(raw)) return false;
  throw new ConfigError(`${name}=${raw}: expected true or false`);
}
