// harness.mjs - what the server's SDK tests share: check(name, fn) runs one named check and
// prints ok or FAIL with the stack (the run goes on); finish(what) prints the verdict and exits
// non-zero if any check failed.
let failed = 0;

export async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n     ${e && e.stack ? e.stack : e}`);
  }
}

export function finish(what) {
  console.log(failed ? `${failed} check(s) failed` : `all ${what} checks passed`);
  process.exit(failed ? 1 : 0);
}
