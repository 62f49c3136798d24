// A job's live stream (GET /v1/jobs/{id}/stream) read with fetch(): EventSource cannot send the
// Authorization header. Resumes with Last-Event-ID after the server's periodic closes or a drop.
import { authHeaders, problemOf } from "./api.js";

/** Incremental text/event-stream parser (the WHATWG rules for event, data, id; comments ignored). */
export class EventStreamParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.lastId = null;
    this.reset();
  }

  reset() {
    this.event = "";
    this.data = [];
    this.id = null;
  }

  /** Feed decoded text; complete events are dispatched, a partial line waits for more. */
  push(text) {
    this.buffer += text;
    // A trailing "\r" may be half of "\r\n": hold it back until the next chunk says.
    const held = this.buffer.endsWith("\r") ? "\r" : "";
    const lines = (held ? this.buffer.slice(0, -1) : this.buffer).split(/\r\n|\n|\r/);
    this.buffer = lines.pop() + held;
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }

  dispatch() {
    if (this.id !== null) this.lastId = this.id;
    if (this.data.length) {
      const raw = this.data.join("\n");
      let data;
      try {
        data = JSON.parse(raw);
      } catch {
        data = raw;
      }
      this.onEvent({ event: this.event || "message", id: this.lastId, data });
    }
    this.reset();
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

/**
 * Follow a job's events until its `end` event or `signal` aborts. `onEvent({event, id, data})` sees each
 * event once, in order; `onState("live" | "reconnecting")` tracks the connection. Rejects with an
 * ApiError on a 4xx (unknown job, bad key): retrying cannot help those.
 */
export async function followJob(jobId, { onEvent, onState = () => {}, signal, lastEventId = null }) {
  let ended = false;
  const parser = new EventStreamParser((event) => {
    if (event.event === "end") ended = true;
    onEvent(event);
  });
  parser.lastId = lastEventId;
  let backoff = 500;
  while (!ended && !signal?.aborted) {
    try {
      const headers = { Accept: "text/event-stream", ...authHeaders() };
      if (parser.lastId) headers["Last-Event-ID"] = parser.lastId;
      const response = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/stream`, { headers, signal });
      if (response.status >= 400 && response.status < 500) throw await problemOf(response);
      if (!response.ok) throw new Error(`stream answered ${response.status}`);
      onState("live");
      backoff = 500;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(decoder.decode(value, { stream: true }));
      }
    } catch (error) {
      if (signal?.aborted) return;
      if (error && error.status >= 400 && error.status < 500) throw error;
      backoff = Math.min(backoff * 2, 10_000);
    }
    if (!ended && !signal?.aborted) {
      onState("reconnecting");
      await sleep(backoff, signal);
    }
  }
}
