// Small statistics shared by the browser benchmarks (*.bench.ts).

/** The median (the upper one of an even count); NaN for none. */
export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};
