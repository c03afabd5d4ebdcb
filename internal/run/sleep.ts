/** Resolves after `ms` milliseconds: for back-off between retries and for paced loops, in Node and in the browser. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
