// An editor as Node.js saves: fs.writeFileSync over the note (open with O_TRUNC, write),
// after reading the note again if it changed on disk. Same arguments and output as
// note_editor.py in `inplace` mode: NOTES_DIR NAME IMAGES_DIR OUT SECONDS TEMPLATE_PNG
// [MIN_MS MAX_MS [PASTE_EVERY]].
"use strict";
const fs = require("fs");
const path = require("path");

const [notesDir, name, imagesDir, outPath, seconds, templatePng, minMs, maxMs, every] = process.argv.slice(2);
const pauseMin = Number(minMs ?? 20);
const pauseMax = Number(maxMs ?? 50);
const pasteEvery = Number(every ?? 1);
const EDITS_PER_NOTE = 150;
const base = fs.readFileSync(templatePng);
const now = () => Number(process.hrtime.bigint()) / 1e9; // CLOCK_MONOTONIC
const deadline = now() + Number(seconds);
const out = fs.openSync(outPath, "w");
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

let buffer = "";
let seen = null;
let count = 0;
while (now() < deadline) {
  const note = path.join(notesDir, `${name}-${String(Math.floor(count / EDITS_PER_NOTE)).padStart(4, "0")}.md`);
  if (count % EDITS_PER_NOTE === 0) {
    buffer = `# ${name}\n`;
    seen = null;
  }
  const marker = `<${name}-${String(count).padStart(6, "0")}>`;
  let image = null;
  let line = `${marker} typed\n`;
  if (count % pasteEvery === 0) {
    image = `${name}-${String(count).padStart(6, "0")}.png`;
    fs.writeFileSync(path.join(imagesDir, image), Buffer.concat([base, Buffer.from(marker)]));
    line = `${marker} ![shot](attachments/${image})\n`;
  }
  try {
    const st = fs.statSync(note, { bigint: true });
    const key = `${st.ino}:${st.size}:${st.mtimeNs}`;
    if (key !== seen) buffer = fs.readFileSync(note, "utf8"); // changed under us: reload
  } catch (e) {
    if (e.code !== "ENOENT") throw e;
  }
  buffer += line;
  fs.writeFileSync(note, buffer);
  const st = fs.statSync(note, { bigint: true });
  // What we wrote, unless someone replaced the note in between: then the next save reloads.
  seen = st.size === BigInt(Buffer.byteLength(buffer)) ? `${st.ino}:${st.size}:${st.mtimeNs}` : null;
  fs.writeSync(out, JSON.stringify({ marker, note: path.basename(note), image, t: now() }) + "\n");
  count += 1;
  sleep(pauseMin + Math.random() * (pauseMax - pauseMin));
}
fs.closeSync(out);
