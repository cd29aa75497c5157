// Writes dist/lib/index.mjs, the ES module entry: it re-exports the CommonJS
// build so that `import` and `require` share one module instance (one pool).
const { writeFileSync } = require("node:fs");
const { join } = require("node:path");
const api = require(join(__dirname, "..", "dist", "lib", "index.js"));
const names = Object.keys(api).filter((name) => name !== "__esModule");
const body =
  `import cjs from "./index.js";\n` +
  names.map((name) => `export const ${name} = cjs.${name};\n`).join("") +
  `export default cjs;\n`;
writeFileSync(join(__dirname, "..", "dist", "lib", "index.mjs"), body);
