// The engine builds `./build.sh serve` is still making (www/builds.json): while the page runs a slower
// build, it says that a faster one is coming, and once it is built, that a reload will use it. The worker
// never loads a build listed as pending (worker.js), so a half-made or stale build is never picked up.

import { $ } from './dom.js';

/** How often the page asks whether the faster build is ready. */
const POLL_MS = 5000;

const NAMES = { 'pkg-threads': 'threaded', 'pkg-relaxed': 'relaxed SIMD' };

let watching = false; // a restarted engine answers `init` again: one watch is enough

/**
 * `{state, pending}` from www/builds.json (the page's and the worker's one reader of it); no file there
 * means every build present is ready; null when the server could not be asked.
 */
export async function readBuilds() {
  try {
    const res = await fetch(new URL('./builds.json', import.meta.url), { cache: 'no-store' });
    if (!res.ok) return { state: 'done', pending: [] };
    const { state, pending } = await res.json();
    return { state: String(state), pending: Array.isArray(pending) ? pending.map(String) : [] };
  } catch {
    return null; // the server is gone for a moment
  }
}

/** The small print after the engine's name: what is coming, ready or failed. */
function show(kind, text) {
  const el = $('engine-build');
  el.textContent = text;
  el.dataset.build = kind;
  el.hidden = false;
}

/**
 * Watches the faster builds the worker skipped (`coming`, from its answer to `init`) until one is ready or
 * the build stops; `notify` puts up the page's notices. Returns the watch's stop function, or null when
 * nothing is coming.
 */
export function watchBuilds({ coming = [], buildState }, notify) {
  if (watching || !coming.length || buildState !== 'building') return null;
  watching = true;
  const names = coming.map((n) => NAMES[n] ?? n).join(', ');
  show('coming', `faster build (${names}) coming`);
  const timer = setInterval(async () => {
    const status = await readBuilds();
    if (!status) return; // ask again later
    const ready = coming.filter((n) => !status.pending.includes(n));
    if (ready.length) {
      clearInterval(timer);
      const which = ready.map((n) => NAMES[n] ?? n).join(', ');
      show('ready', `faster build (${which}) ready: reload`);
      notify(`The faster engine build (${which}) is ready: reload the page to use it.`, 'info', 'build-ready');
    } else if (status.state !== 'building') {
      clearInterval(timer);
      show('failed', `faster build ${status.state}`);
      notify(
        `The faster engine build ${status.state === 'failed' ? 'failed' : 'was stopped'} (see target/serve-builds.log); this page keeps the build it runs.`,
        'info',
        'build-failed',
      );
    }
  }, POLL_MS);
  return () => clearInterval(timer);
}
