// Money in the console is what it is in the API: an integer number of minor units of an ISO
// 4217 currency. Amounts typed by people are parsed as decimal strings (never floats), so
// "0.10" EUR is exactly 10 cents and "1.005" EUR is refused instead of rounded.

/** The largest amount the API accepts, in minor units. */
export const MAX_MINOR = 99_999_999_999;

/**
 * Parses `text` (e.g. "1,234.50") as an amount of a currency with `digits` minor-unit digits.
 * Returns { minor } or { error }.
 */
export function toMinor(text, digits) {
  const raw = String(text ?? "").trim();
  if (raw === "") return { error: "is required" };
  // Commas only as thousands separators in groups of three ("1,234.50"); a decimal comma
  // ("12,50") is refused rather than read as 1,250.
  if (raw.includes(",") && !/^\d{1,3}(,\d{3})+(\.\d*)?$/.test(raw)) {
    return { error: "use a point for decimals and commas only between thousands, like 1,234.50" };
  }
  const t = raw.replace(/,/g, "");
  const m = /^(\d+)(?:\.(\d*))?$/.exec(t);
  if (!m) return { error: "must be a positive number like 12.50" };
  const frac = m[2] ?? "";
  if (frac.length > digits) {
    return {
      error: digits === 0
        ? "this currency has no minor units: use a whole number"
        : `this currency has ${digits} decimal place${digits === 1 ? "" : "s"}`,
    };
  }
  const whole = m[1].replace(/^0+(?=\d)/, "");
  const minorText = whole + frac.padEnd(digits, "0");
  if (minorText.replace(/^0+/, "").length > 11) return { error: "is too large" };
  const minor = Number(minorText);
  if (!Number.isSafeInteger(minor) || minor > MAX_MINOR) return { error: "is too large" };
  if (minor <= 0) return { error: "must be more than zero" };
  return { minor };
}

/** Formats `minor` units of `currency` for people, e.g. 123450 EUR → "1,234.50 EUR". */
export function format(minor, currency, digits) {
  const d = Number.isInteger(digits) ? digits : 2;
  const negative = minor < 0;
  const s = String(Math.abs(minor)).padStart(d + 1, "0");
  const whole = s.slice(0, s.length - d) || "0";
  const frac = d > 0 ? "." + s.slice(s.length - d) : "";
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${negative ? "-" : ""}${grouped}${frac} ${currency}`;
}
