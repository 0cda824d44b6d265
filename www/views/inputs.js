// The photo section: the drop zone (and dropping or pasting anywhere on the page), the user's photos
// and tensors, and the sample photos.

import { $ } from '../dom.js';

function thumb(title, testid) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'thumb';
  b.title = title;
  b.dataset.testid = testid;
  return b;
}

function image(src, alt, lazy = false) {
  const img = document.createElement('img');
  img.src = src;
  img.alt = alt;
  if (lazy) img.loading = 'lazy';
  return img;
}

/** The user's items, `current` (an item or null) marked; onPick(item). */
export function renderQueue(items, current, onPick) {
  const q = $('queue');
  q.replaceChildren();
  for (const it of items) {
    const b = thumb(it.name, 'queue-item');
    b.classList.toggle('tensor', it.kind === 'tensor');
    b.classList.toggle('selected', current === it);
    if (it.kind === 'photo') b.append(image(it.url, it.name));
    const tag = document.createElement('span');
    tag.className = 'tag';
    tag.textContent = it.name;
    b.append(tag);
    b.onclick = () => onPick(it);
    q.append(b);
  }
  for (const el of $('samples').children) el.classList.toggle('selected', current?.sample === el.dataset.file);
}

/** The sample photos (photos/photos.json, in the order given); onPick(photo). */
export function renderSamples(photos, onPick) {
  const box = $('samples');
  box.replaceChildren();
  for (const p of photos) {
    const b = thumb(`${p.title}\n${p.attribution}\nLicence: ${p.licence}`, `sample-${p.file}`);
    b.dataset.file = p.file;
    b.append(image(`photos/${p.file}`, p.title, true));
    if (p.class) {
      // a labelled sample: its true class under the thumbnail
      const tag = document.createElement('span');
      tag.className = 'tag';
      tag.textContent = p.class;
      b.append(tag);
    }
    b.onclick = () => onPick(p);
    box.append(b);
  }
}

function showOver(on) {
  $('drop-overlay').hidden = !on;
  $('dropzone').classList.toggle('over', on);
}

/** The files of a paste: its files, else its file items. */
function pastedFiles(e) {
  const files = [...(e.clipboardData?.files ?? [])];
  if (files.length) return files;
  for (const item of e.clipboardData?.items ?? []) {
    const f = item.kind === 'file' ? item.getAsFile() : null;
    if (f) files.push(f);
  }
  return files;
}

/** onFiles(files): files chosen, dropped anywhere on the page or pasted. */
export function bind({ onFiles }) {
  const dz = $('dropzone');
  const choose = () => $('photo-file').click();
  dz.onclick = (e) => {
    if (e.target.tagName !== 'LABEL') choose();
  };
  dz.onkeydown = (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      choose();
    }
  };
  $('photo-file').onchange = (e) => {
    onFiles([...e.target.files]);
    e.target.value = '';
  };
  const hasFiles = (e) => [...(e.dataTransfer?.types ?? [])].includes('Files');
  let depth = 0; // dragenter/dragleave pairs of nested elements
  window.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth++;
    showOver(true);
  });
  window.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  window.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) showOver(false);
  });
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    showOver(false);
    if (e.dataTransfer?.files?.length) onFiles([...e.dataTransfer.files]);
  });
  window.addEventListener('paste', (e) => {
    const files = pastedFiles(e);
    if (files.length) {
      e.preventDefault();
      onFiles(files);
    }
  });
}
