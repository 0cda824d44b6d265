// Recovery when the page's engine dies: the worker is restarted with the model and the photo (a
// photo that crashed it twice is not fed again), and the page gives up after a few crashes a minute.

import { errorText } from './raster.js';
import { busy, notify, setStatus } from './views/status.js';

/**
 * What the page's worker died of (`reason`), for the page's `state`; `restart(withImage)` brings a
 * fresh worker back to where the page was; `forget()` is called when the photo is not fed again.
 */
export async function recover(reason, { state, restart, forget }) {
  const crashes = state.engine.countCrash();
  if (!state.engine.started) {
    notify(`The engine could not start: ${reason}`, 'error', 'engine-error');
    setStatus('Engine unavailable');
    return;
  }
  if (crashes > 3) {
    notify(`The engine stopped again (${reason}). Reload the page to start over.`, 'error', 'engine-error');
    return;
  }
  const withImage = crashes <= 2; // a photo that crashes twice is not fed again
  const note = notify(`The engine stopped (${reason}); restarting it…`, 'info', 'restart-notice');
  try {
    await busy('Restarting the engine…', () => restart(withImage));
    const what = state.image && withImage ? 'the model and the photo were reloaded' : 'the model was reloaded';
    note.querySelector('.text').textContent = `The engine stopped (${reason}). It was restarted and ${what}.`;
    if (state.image && !withImage) forget();
  } catch (e) {
    note.remove();
    notify(`The engine could not be restarted: ${errorText(e)}`, 'error', 'engine-error');
  }
}
