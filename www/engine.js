// The engine client: a worker that speaks protocol.js, behind promises. A request resolves on its
// `complete` answer and rejects (EngineError) on its `error`; `progress` answers go to a callback.
// A worker that traps or dies is stopped, every open request fails, and `onCrash` is told; the page
// then calls `restart(replay)`, which starts a fresh worker and holds every other request back until
// `replay` has loaded the model (and the photo) into it again.

import { isTrapAnswer, STATUS } from './protocol.js';

export class EngineError extends Error {
  constructor(message, trap = false) {
    super(message);
    this.name = 'EngineError';
    this.trap = trap;
  }
}

/** Whether an error is the engine stopping (already reported by the crash handler), not a refusal. */
export const isStop = (e) => e instanceof EngineError && e.trap;

/** The page's worker script, with the page's `?threads=N` (the size of the threaded engine's pool) passed on. */
export function pageWorkerUrl() {
  const url = new URL('./worker.js', import.meta.url);
  const threads = new URLSearchParams(location.search).get('threads');
  if (threads !== null) url.searchParams.set('threads', threads);
  return url;
}

export class EngineClient {
  /** `url`: the worker's module script; `onCrash(reason)`: the worker trapped or died. */
  constructor(url, { onCrash = () => {} } = {}) {
    this.url = url;
    this.onCrash = onCrash;
    this.pending = new Map();
    this.nextId = 1;
    this.started = false; // set by the page once the first `init` succeeded
    this.crashes = [];
    this.gate = null;
    this.spawn();
  }

  spawn() {
    this.dead = false;
    this.worker = new Worker(this.url, { type: 'module' });
    this.worker.onmessage = (e) => this.receive(e.data);
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.crash(e.message || 'the engine’s worker failed');
    };
    this.worker.onmessageerror = () => this.crash('a message from the engine could not be read');
  }

  /**
   * Sends a request; resolves with its `complete` answer. While a restart replays the model, waits
   * for it, so that the request finds the model (and the photo) loaded again.
   * options: {transfer: buffers to hand over, onProgress(msg)}.
   */
  request(type, payload = {}, options = {}) {
    if (this.gate) return this.gate.then(() => this.request(type, payload, options));
    return this.send(type, payload, options);
  }

  /** Loads `model` (the page's model entry: its side files of external data and its preprocessing) from `bytes`. */
  loadModel(bytes, model, options = {}) {
    return this.request('load', { bytes, side: model.side ?? [], preprocess: model.preprocess }, options);
  }

  send(type, payload = {}, { transfer = [], onProgress } = {}) {
    if (this.dead) return Promise.reject(new EngineError('the engine is restarting', true));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, type, ...payload }, transfer);
    });
  }

  receive(msg) {
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.status === STATUS.progress) {
      p.onProgress?.(msg);
    } else if (msg.status === STATUS.complete) {
      this.pending.delete(msg.id);
      p.resolve(msg);
    } else {
      this.pending.delete(msg.id);
      const trap = isTrapAnswer(msg);
      p.reject(new EngineError(msg.error, trap));
      if (trap) this.crash(msg.error);
    }
  }

  /**
   * The restart gate: a fresh worker, brought back by `replay({request})` (whose requests go straight
   * to the new worker); every other request waits until replay is done, successful or not.
   */
  async restart(replay) {
    this.spawn();
    let open;
    const gate = new Promise((resolve) => (open = resolve));
    this.gate = gate;
    try {
      return await replay({ request: (...args) => this.send(...args) });
    } finally {
      if (this.gate === gate) this.gate = null;
      open();
    }
  }

  /** Counts a crash; returns how many happened in the last minute (the page gives up after a few). */
  countCrash(now = Date.now()) {
    this.crashes = this.crashes.filter((t) => now - t < 60000);
    this.crashes.push(now);
    return this.crashes.length;
  }

  crash(reason) {
    if (this.dead) return;
    this.stop(`the engine stopped: ${reason}`);
    this.onCrash(reason);
  }

  /** Ends the worker now, even in the middle of a request; `restart` starts a fresh one. */
  stop(reason) {
    if (this.dead) return;
    this.dead = true;
    this.worker.terminate();
    for (const p of this.pending.values()) p.reject(new EngineError(reason, true));
    this.pending.clear();
  }
}
