// Every WebAssembly memory instantiated in this realm (the page, or a worker), tagged with the engine
// being loaded, so that the size of onnxruntime-web's memory can be read too (it does not expose it).
// Imported before any engine: it wraps WebAssembly.instantiate and instantiateStreaming.

export const memories = [];
let loading = 'none';

/** Tags the memories instantiated from now on with `engine`. */
export function loadingEngine(engine) {
  loading = engine;
}

/** The total size in bytes of the memories tagged with `engine`. */
export const memoryOf = (engine) =>
  memories.filter((m) => m.engine === engine).reduce((s, m) => s + m.memory.buffer.byteLength, 0);

function collect(result, imports) {
  const found = [];
  const add = (v) => {
    if (v instanceof WebAssembly.Memory && !found.includes(v)) found.push(v);
  };
  const instance = result instanceof WebAssembly.Instance ? result : result?.instance;
  if (instance) Object.values(instance.exports).forEach(add);
  for (const mod of Object.values(imports ?? {})) {
    if (mod && typeof mod === 'object') Object.values(mod).forEach(add);
  }
  for (const memory of found) {
    if (!memories.some((m) => m.memory === memory)) memories.push({ engine: loading, memory });
  }
}

for (const name of ['instantiate', 'instantiateStreaming']) {
  const original = WebAssembly[name];
  WebAssembly[name] = async function (source, imports, ...rest) {
    const result = await original.call(WebAssembly, source, imports, ...rest);
    collect(result, imports);
    return result;
  };
}
