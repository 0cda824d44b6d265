// The conservation readout: the relevance the explanation started from, what arrived at the pixels,
// the relative error, and the tables per residual block and per layer.

import { $ } from '../dom.js';
import { baselineText } from '../methods.js';
import { fmt, percentOf } from '../raster.js';

/** Conservation is a property of LRP; the baselines are not meant to conserve relevance. */
function note(s, options) {
  if (options.method !== 'lrp') return `${baselineText(options.method).label} is not meant to conserve relevance, so no relative error is given.`;
  if (s.conservationError <= 1e-4) return 'Conserved: the pixels carry the relevance the explanation started from.';
  if (options.composite === 'reference') return 'The authors’ rules lose some relevance (max-pool substitute, empty windows); “conserving” does not.';
  return 'Relevance is not conserved exactly with these rules.';
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    td.textContent = c;
    tr.append(td);
  }
  return tr;
}

function renderBlocks(blocks) {
  const table = $('blocks-table');
  table.replaceChildren();
  if (!blocks.length) {
    table.innerHTML = '<tbody><tr><td>no residual additions for this method</td></tr></tbody>';
    return;
  }
  table.innerHTML =
    '<thead><tr><th>addition</th><th>shortcut</th><th title="Σ R arriving at the addition">Σ R in</th>' +
    '<th title="share sent down the shortcut">→ skip</th><th title="share sent down the residual branch">→ main</th></tr></thead><tbody></tbody>';
  const tb = table.querySelector('tbody');
  for (const b of blocks) {
    const tr = row([b.node, b.projection ? 'projection' : 'identity', fmt(b.relevance), percentOf(b.shortcut, b.relevance), percentOf(b.main, b.relevance)]);
    const back = b.block_input === null || b.block_input === undefined ? '' : `; Σ R at the block input ${fmt(b.block_input)}`;
    tr.title = `${b.node}: Σ R ${fmt(b.relevance)} → shortcut ${fmt(b.shortcut)} + main ${fmt(b.main)}${back}`;
    tb.append(tr);
  }
}

function renderLedger(ledger) {
  const table = $('ledger-table');
  table.innerHTML = '<thead><tr><th>layer</th><th>kind</th><th>Σ R</th></tr></thead><tbody></tbody>';
  const tb = table.querySelector('tbody');
  for (const l of ledger) {
    const tr = row([l.node, l.kind, fmt(l.relevance)]);
    tr.firstChild.title = l.node;
    tb.append(tr);
  }
}

/** The readout of an explanation's summary `s`, made with `options`. */
export function render(s, options) {
  $('start-relevance').textContent = fmt(s.startRelevance);
  $('input-sum').textContent = fmt(s.inputRelevanceSum);
  const rel = $('relative-error');
  const conserving = options.method === 'lrp' && s.conservationError != null;
  if (conserving) {
    rel.textContent = s.conservationError.toExponential(2);
    rel.dataset.value = String(s.conservationError);
    rel.title = '';
  } else {
    // there is no error to speak of
    rel.textContent = 'n/a';
    delete rel.dataset.value;
    rel.title = `not applicable: ${baselineText(options.method).label} is not meant to conserve relevance`;
  }
  rel.className = conserving ? (s.conservationError <= 1e-4 ? 'good' : 'warn') : '';
  $('conservation-note').textContent = note(s, options);
  // what the composite did with the model's BatchNorm (LRP only)
  $('batchnorm-note').textContent = s.batchnorm ?? '';
  renderBlocks(s.blocks);
  renderLedger(s.ledger);
}

export function reset() {
  for (const id of ['start-relevance', 'input-sum', 'relative-error']) $(id).textContent = '—';
  $('relative-error').className = '';
  delete $('relative-error').dataset.value;
  $('conservation-note').textContent = '';
  $('batchnorm-note').textContent = '';
  $('blocks-table').replaceChildren();
  $('ledger-table').replaceChildren();
}
