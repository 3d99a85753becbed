// Strimzi's custom resources in a rendered manifest (JSON lines on stdin), each checked by
// the validator @kubernetes-models/strimzi-kafka-operator generates from Strimzi's own CRDs.
// Prints one line per object; exits 1 if any is invalid.
// Usage: node validate-strimzi.mjs NODE_MODULES_DIR < objects.jsonl
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const models = join(process.argv[2], "@kubernetes-models", "strimzi-kafka-operator");

const lines = createInterface({ input: process.stdin });
let invalid = 0;
for await (const line of lines) {
  if (!line.trim()) continue;
  const object = JSON.parse(line);
  const [group, version] = object.apiVersion.split("/");
  const module = await import(pathToFileURL(join(models, group, version, `${object.kind}.js`)).href);
  try {
    new module[object.kind](object).validate();
    console.log(`valid ${object.kind} ${object.metadata.name}`);
  } catch (error) {
    invalid += 1;
    console.log(`invalid ${object.kind} ${object.metadata.name}: ${error.message}`);
  }
}
process.exit(invalid ? 1 : 0);
