// The source portrait: a camera snapshot (default) or an uploaded image, sent once as chunks.

const SIDE = 256;
const CHUNK_BYTES = 16 * 1024; // well under the SCTP message size both browsers accept
export const MAX_UPLOAD_BYTES = 4 * 1024 * 1024;

/** Centre-square snapshot of a playing <video>, as JPEG bytes. */
export async function snapshot(video) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = SIDE;
  const side = Math.min(video.videoWidth, video.videoHeight);
  if (!side) throw new Error("the camera has not delivered a frame yet");
  const sx = (video.videoWidth - side) / 2;
  const sy = (video.videoHeight - side) / 2;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(video, sx, sy, side, side, 0, 0, SIDE, SIDE);
  if (isBlank(context.getImageData(0, 0, SIDE, SIDE).data)) {
    // A tab in the background may not have painted any camera frame yet.
    throw new Error("the camera frame is blank");
  }
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
  return new Uint8Array(await blob.arrayBuffer());
}

function isBlank(rgba) {
  let sum = 0;
  let sumSquares = 0;
  const count = rgba.length / 4;
  for (let i = 0; i < rgba.length; i += 4) {
    const grey = (rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3;
    sum += grey;
    sumSquares += grey * grey;
  }
  const mean = sum / count;
  return sumSquares / count - mean * mean < 25; // standard deviation below 5 grey levels
}

/** Bytes of a user-chosen file, after the checks the node would make anyway. */
export async function fromFile(file) {
  if (!file) throw new Error("choose an image file first");
  if (!["image/jpeg", "image/png"].includes(file.type)) {
    throw new Error(`${file.name} is not a JPEG or PNG image`);
  }
  if (file.size > MAX_UPLOAD_BYTES) {
    throw new Error(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; the limit is 4 MB`);
  }
  return new Uint8Array(await file.arrayBuffer());
}

async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Header, chunks, end marker over the reliable `control` channel. */
export async function sendPortrait(channel, bytes) {
  const sha256 = await sha256Hex(bytes);
  channel.send(JSON.stringify({ type: "portrait", bytes: bytes.length, sha256 }));
  for (let start = 0; start < bytes.length; start += CHUNK_BYTES) {
    channel.send(bytes.slice(start, start + CHUNK_BYTES));
  }
  channel.send(JSON.stringify({ type: "portrait-end" }));
  return sha256;
}
