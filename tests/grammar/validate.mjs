// validate.mjs - validates generated texts against JSON schemas with ajv (a real validator,
// independent of Quarrel): argv is SCHEMA OUTPUT pairs; prints one line per failure and exits 1
// if any output is not JSON or does not validate. Formats in ajv-formats' "fast" mode, whose
// date/time/uuid checks are the syntax llama.cpp's converter constrains (no calendar check:
// its date rule accepts 2023-02-31, as the reference converter does).
import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv, { mode: "fast" });
const args = process.argv.slice(2);
let bad = 0, n = 0;
const compiled = new Map();
for (let i = 0; i + 1 < args.length; i += 2) {
  const [schemaPath, outPath] = [args[i], args[i + 1]];
  if (!compiled.has(schemaPath))
    compiled.set(schemaPath, ajv.compile(JSON.parse(readFileSync(schemaPath, "utf8"))));
  const validate = compiled.get(schemaPath);
  const text = readFileSync(outPath, "utf8");
  n++;
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    console.log(`${outPath}: not JSON (${e.message}): ${JSON.stringify(text.slice(0, 200))}`);
    bad++;
    continue;
  }
  if (!validate(value)) {
    console.log(`${outPath}: does not match ${schemaPath}: ${ajv.errorsText(validate.errors)}: ${text.slice(0, 200)}`);
    bad++;
  }
}
console.log(`${n - bad} of ${n} outputs valid`);
process.exit(bad || n === 0 ? 1 : 0);
