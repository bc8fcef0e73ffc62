// Validate glTF files with the Khronos glTF-Validator (npm gltf-validator).
// Usage: node validate.mjs FILE.glb [FILE.glb ...]
// Prints one JSON object: {FILE: report summary + messages}; exit 0 (the caller judges).
import { readFile } from "node:fs/promises";
import validator from "gltf-validator";

const out = {};
for (const file of process.argv.slice(2)) {
  const data = new Uint8Array(await readFile(file));
  const report = await validator.validateBytes(data, { maxIssues: 100, format: "glb", uri: file });
  out[file] = {
    validatorVersion: report.validatorVersion,
    numErrors: report.issues.numErrors,
    numWarnings: report.issues.numWarnings,
    numInfos: report.issues.numInfos,
    numHints: report.issues.numHints,
    messages: report.issues.messages,
    info: report.info,
  };
}
process.stdout.write(JSON.stringify(out, null, 1) + "\n");
