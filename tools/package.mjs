// Writes the npm package of the engine into DIR (which already holds wasm-bindgen's output for
// `--target web`): package.json, README, licences; then `npm pack` there. Usage: node tools/package.mjs DIR
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.resolve(process.argv[2] ?? 'dist/npm');
const cargo = fs.readFileSync(path.join(root, 'Cargo.toml'), 'utf8');
const version = cargo.match(/^\[workspace\.package\][^[]*?^version\s*=\s*"([^"]+)"/ms)?.[1];
if (!version) throw new Error('no workspace version in Cargo.toml');
for (const f of ['resnet_lrp.js', 'resnet_lrp.d.ts', 'resnet_lrp_bg.wasm']) {
  if (!fs.existsSync(path.join(dir, f))) throw new Error(`missing ${f} in ${dir}: run wasm-bindgen first`);
}
const pkg = {
  name: 'resnet-lrp',
  version,
  description: 'Layer-wise Relevance Propagation with Relevance Splitting for ONNX ResNets, in the browser (WebAssembly)',
  license: 'MIT OR Apache-2.0',
  type: 'module',
  main: './resnet_lrp.js',
  module: './resnet_lrp.js',
  types: './resnet_lrp.d.ts',
  exports: {
    '.': { types: './resnet_lrp.d.ts', default: './resnet_lrp.js' },
    './resnet_lrp_bg.wasm': './resnet_lrp_bg.wasm',
  },
  files: ['resnet_lrp.js', 'resnet_lrp.d.ts', 'resnet_lrp_bg.wasm', 'resnet_lrp_bg.wasm.d.ts', 'README.md', 'LICENSE-MIT', 'LICENSE-APACHE'],
  sideEffects: false,
  keywords: ['lrp', 'explainability', 'resnet', 'onnx', 'webassembly', 'xai'],
};
fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
fs.copyFileSync(path.join(root, 'package', 'README.md'), path.join(dir, 'README.md'));
for (const l of ['LICENSE-MIT', 'LICENSE-APACHE']) fs.copyFileSync(path.join(root, l), path.join(dir, l));
fs.rmSync(path.join(dir, '.gitignore'), { force: true }); // wasm-bindgen's `*` would leave the package empty
const out = execFileSync('npm', ['pack', '--silent'], { cwd: dir, encoding: 'utf8' }).trim().split('\n').pop();
console.log(path.join(dir, out));
