// Ironbowl console: resumable uploads of footage and consent clips, in plain JavaScript.
//
// The file is sent in chunks to the API's resumable uploads (avatars/api/uploads.py):
//   POST {api}                     {purpose, filename, content_type, size} → the upload's id
//   PUT  {api}{id}/                a chunk, Content-Range: bytes START-END/TOTAL → received
//   GET  {api}{id}/                how far it got ("received")
//   POST {api}{id}/complete/       {sha256} → size, checksum and content checked
// with the console's session and its CSRF token. The progress bar counts bytes as the browser
// sends them (XMLHttpRequest upload progress). A dropped connection, a server error or a stalled
// chunk costs at most the chunk in flight: the script waits, asks the server how far the upload
// got and goes on from there. The upload's id is kept in localStorage under the file's name,
// size and modification time, so after a reload (or a crash) choosing the same file continues
// the same upload. The file's SHA-256 is computed while the chunks are sent (incrementally, so
// that a 600 MB file is never held in memory).
//
// The page gives: #upload (data-state: idle, preparing, sending, retrying, checking, complete,
// failed, paused), #upload-config (JSON: api, purpose, chunkBytes, csrfCookie, types, detailUrl,
// placeholder, select, messages), #upload-file, #upload-start, #upload-progress, #upload-percent,
// #upload-bytes, #upload-status, #upload-pending and optionally #upload-purpose. When an upload
// is complete, #upload fires "upload:complete" (detail: the upload as the API describes it).
(function () {
  "use strict";

  // --- SHA-256, incremental (FIPS 180-4) -----------------------------------------------------
  var K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ]);

  function Sha256() {
    this.h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
    ]);
    this.w = new Uint32Array(64);
    this.block = new Uint8Array(64);
    this.filled = 0; // bytes waiting in this.block
    this.length = 0; // bytes hashed so far
  }

  Sha256.prototype.compress = function (bytes, at) {
    var w = this.w, h = this.h, i, s0, s1, t1, t2;
    for (i = 0; i < 16; i++) {
      var j = at + i * 4;
      w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
    }
    for (i = 16; i < 64; i++) {
      var a15 = w[i - 15], a2 = w[i - 2];
      s0 = ((a15 >>> 7) | (a15 << 25)) ^ ((a15 >>> 18) | (a15 << 14)) ^ (a15 >>> 3);
      s1 = ((a2 >>> 17) | (a2 << 15)) ^ ((a2 >>> 19) | (a2 << 13)) ^ (a2 >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (i = 0; i < 64; i++) {
      s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      t1 = (k + s1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
  };

  Sha256.prototype.update = function (bytes) {
    var at = 0, n = bytes.length;
    this.length += n;
    if (this.filled > 0) {
      var take = Math.min(64 - this.filled, n);
      this.block.set(bytes.subarray(0, take), this.filled);
      this.filled += take;
      at = take;
      if (this.filled < 64) return this;
      this.compress(this.block, 0);
      this.filled = 0;
    }
    for (; at + 64 <= n; at += 64) this.compress(bytes, at);
    if (at < n) {
      this.block.set(bytes.subarray(at), 0);
      this.filled = n - at;
    }
    return this;
  };

  Sha256.prototype.hex = function () {
    var bits = this.length * 8;
    var tail = new Uint8Array((this.filled < 56 ? 64 : 128) - this.filled);
    tail[0] = 0x80;
    var high = Math.floor(bits / 0x100000000), low = bits >>> 0, end = tail.length;
    tail[end - 8] = high >>> 24; tail[end - 7] = high >>> 16; tail[end - 6] = high >>> 8; tail[end - 5] = high;
    tail[end - 4] = low >>> 24; tail[end - 3] = low >>> 16; tail[end - 2] = low >>> 8; tail[end - 1] = low;
    var length = this.length;
    this.update(tail);
    this.length = length;
    var out = "";
    for (var i = 0; i < 8; i++) out += ("00000000" + this.h[i].toString(16)).slice(-8);
    return out;
  };

  function readSlice(blob) {
    if (blob.arrayBuffer) return blob.arrayBuffer();
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () { resolve(reader.result); };
      reader.onerror = function () { reject(reader.error); };
      reader.readAsArrayBuffer(blob);
    });
  }

  // The file's SHA-256, read 2 MB at a time; onProgress(bytes hashed).
  async function sha256OfFile(file, onProgress) {
    var hash = new Sha256(), step = 2 * 1024 * 1024;
    for (var at = 0; at < file.size; at += step) {
      hash.update(new Uint8Array(await readSlice(file.slice(at, at + step))));
      onProgress(Math.min(file.size, at + step));
    }
    return hash.hex();
  }

  // Exposed for tests and for other pages that need a file's checksum.
  window.IronbowlUpload = { Sha256: Sha256, sha256OfFile: sha256OfFile };

  // --- The widget ----------------------------------------------------------------------------
  var root = document.getElementById("upload");
  var configNode = document.getElementById("upload-config");
  if (!root || !configNode) return;
  var config = JSON.parse(configNode.textContent);
  var words = config.messages || {};
  var $ = function (id) { return document.getElementById(id); };
  var ui = {
    file: $("upload-file"), start: $("upload-start"), progress: $("upload-progress"),
    percent: $("upload-percent"), bytes: $("upload-bytes"), status: $("upload-status"),
    pending: $("upload-pending"), purpose: $("upload-purpose")
  };
  var STORE = "ironbowl.upload|" + config.api + "|";
  var STALL_MS = 60000; // a chunk whose bytes stop moving this long counts as a dropped connection
  var MAX_SERVER_RETRIES = 8; // 5xx answers in a row before giving up (network drops: never)
  var busy = false;

  function say(template, values) {
    var text = String(template || "");
    Object.keys(values || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(values[name]));
    });
    return text;
  }

  function setState(state, message) {
    root.dataset.state = state;
    if (message !== undefined) {
      ui.status.textContent = message;
    }
  }

  function sizeText(bytes) {
    if (bytes >= 1024 * 1024 * 1024) return (bytes / 1073741824).toFixed(2) + " GB";
    if (bytes >= 1024 * 1024) return (bytes / 1048576).toFixed(1) + " MB";
    if (bytes >= 1024) return (bytes / 1024).toFixed(1) + " KB";
    return bytes + " B";
  }

  function percentText(done, total) {
    return (total > 0 ? Math.floor((done * 100) / total) : 0) + "%";
  }

  function showProgress(done, total) {
    done = Math.min(done, total);
    var percent = total > 0 ? Math.floor((done * 100) / total) : 0;
    ui.progress.value = percent;
    ui.progress.setAttribute("aria-valuetext", percent + "%");
    ui.percent.textContent = percent + "%";
    ui.bytes.textContent = say(words.bytes, { sent: sizeText(done), total: sizeText(total) });
    root.dataset.sent = String(done);
  }

  function currentPurpose() {
    return ui.purpose ? ui.purpose.value : config.purpose;
  }

  function fileKey(purpose, file) {
    return STORE + purpose + "|" + file.name + "|" + file.size + "|" + file.lastModified;
  }

  // localStorage may be missing or full (private windows): resuming after a reload is then lost,
  // resuming within the page still works.
  function remember(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* see above */ }
  }
  function recall(key) {
    try { return JSON.parse(localStorage.getItem(key) || "null"); } catch (e) { return null; }
  }
  function forget(key) {
    try { localStorage.removeItem(key); } catch (e) { /* see above */ }
  }
  function rememberedKeys() {
    var keys = [];
    try {
      for (var i = 0; i < localStorage.length; i++) {
        var key = localStorage.key(i);
        if (key && key.indexOf(STORE) === 0) keys.push(key);
      }
    } catch (e) { /* see above */ }
    return keys;
  }

  function csrfToken() {
    // The cookie first: it is current even after signing in again in another tab.
    var name = (config.csrfCookie || "csrftoken").replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    var match = document.cookie.match(new RegExp("(?:^|;\\s*)" + name + "=([^;]+)"));
    if (match) return decodeURIComponent(match[1]);
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; }
    catch (e) { return ""; }
  }

  function wait(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // Until the browser says it is online again, or `ms` passed.
  function waitForNetwork(ms) {
    return new Promise(function (resolve) {
      var timer = setTimeout(done, ms);
      function done() { clearTimeout(timer); window.removeEventListener("online", done); resolve(); }
      window.addEventListener("online", done);
    });
  }

  function NetworkError(reason) { this.name = "NetworkError"; this.message = reason; }
  function HttpError(status, body, headers) {
    this.name = "HttpError"; this.status = status; this.body = body || {};
    this.code = this.body.code || ""; this.detail = this.body.detail || "";
    this.retryAfter = parseInt(headers && headers("Retry-After"), 10) || 0;
  }

  // One request. Resolves with the answer's JSON; rejects with NetworkError (nothing came back,
  // or the bytes stalled) or HttpError (the server said no). onProgress(bytes sent of the body).
  function send(method, url, body, options) {
    options = options || {};
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest(), stall = null;
      function watch() {
        clearTimeout(stall);
        stall = setTimeout(function () { xhr.abort(); }, STALL_MS);
      }
      xhr.open(method, url, true);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      Object.keys(options.headers || {}).forEach(function (name) {
        xhr.setRequestHeader(name, options.headers[name]);
      });
      if (options.onProgress) {
        xhr.upload.onprogress = function (event) { watch(); options.onProgress(event.loaded); };
      }
      xhr.onload = function () {
        clearTimeout(stall);
        var data = null;
        try { data = JSON.parse(xhr.responseText || "null"); } catch (e) { data = null; }
        if (xhr.status >= 200 && xhr.status < 300) resolve(data || {});
        else reject(new HttpError(xhr.status, data, function (h) { return xhr.getResponseHeader(h); }));
      };
      xhr.onerror = function () { clearTimeout(stall); reject(new NetworkError("error")); };
      xhr.onabort = function () { clearTimeout(stall); reject(new NetworkError("stalled")); };
      xhr.ontimeout = function () { clearTimeout(stall); reject(new NetworkError("timeout")); };
      if (body instanceof Blob) {
        xhr.setRequestHeader("Content-Type", "application/octet-stream");
        watch();
        xhr.send(body);
      } else if (body !== undefined) {
        xhr.setRequestHeader("Content-Type", "application/json");
        xhr.timeout = 120000; // completing reads the whole file once on the server
        xhr.send(JSON.stringify(body));
      } else {
        xhr.timeout = 30000;
        xhr.send();
      }
    });
  }

  // What the API said, for a person: its detail and each field's message, once each.
  function errorText(error) {
    var parts = error.detail ? [error.detail] : [];
    var fields = error.body.fields || {};
    Object.keys(fields).forEach(function (name) {
      (Array.isArray(fields[name]) ? fields[name] : []).forEach(function (item) {
        if (item && item.message && parts.indexOf(item.message) < 0) parts.push(item.message);
      });
    });
    return parts.join(" ");
  }

  function signedOut(error) {
    return error instanceof HttpError && (error.status === 401 ||
      (error.status === 403 && (error.code === "not_authenticated" || error.code === "authentication_failed")));
  }

  // Run `attempt` until it succeeds: network drops and stalls are retried for as long as the page
  // is open, server errors MAX_SERVER_RETRIES times, each after a wait that grows to 30 s.
  // Other refusals (4xx) are the caller's.
  async function persist(attempt) {
    var drops = 0, serverErrors = 0;
    for (;;) {
      try {
        return await attempt();
      } catch (error) {
        var seconds;
        if (error instanceof NetworkError) {
          drops += 1;
          seconds = Math.min(30, Math.pow(2, Math.min(drops, 5) - 1));
          setState("retrying", say(navigator.onLine === false ? words.offline : words.retrying, { seconds: seconds }));
          await waitForNetwork(seconds * 1000);
        } else if (error instanceof HttpError && (error.status >= 500 || error.status === 429)) {
          serverErrors += 1;
          if (error.status >= 500 && serverErrors > MAX_SERVER_RETRIES) throw error;
          seconds = error.retryAfter || Math.min(30, Math.pow(2, Math.min(serverErrors, 5) - 1));
          setState("retrying", say(words.busy, { seconds: seconds }));
          await wait(seconds * 1000);
        } else {
          throw error;
        }
      }
    }
  }

  function uploadUrl(id, suffix) {
    return config.api + encodeURIComponent(id) + "/" + (suffix || "");
  }

  // The content type the API expects for this file: the browser's when the API allows it (and
  // the name's ending fits), else the one the name's ending belongs to (browsers name .m4a
  // "audio/x-m4a", or nothing at all for .mov on some systems).
  function contentTypeOf(purpose, file) {
    var types = (config.types || {})[purpose] || {};
    var name = file.name.toLowerCase();
    var fits = function (type) {
      return (types[type] || []).some(function (ending) { return name.slice(-ending.length) === ending; });
    };
    if (file.type && types[file.type] && fits(file.type)) return file.type;
    var found = Object.keys(types).filter(fits);
    return found.length ? found[0] : (file.type || "application/octet-stream");
  }

  // The upload to send this file to: the one remembered for it if the server still has it
  // receiving, else a new one. Returns the upload as the API describes it.
  async function uploadFor(key, purpose, file) {
    var remembered = recall(key);
    if (remembered && remembered.id) {
      setState("preparing", words.resuming);
      try {
        var upload = await persist(function () { return send("GET", uploadUrl(remembered.id)); });
        if (upload.size === file.size && upload.status !== "failed") return upload;
      } catch (error) {
        if (signedOut(error) || !(error instanceof HttpError) || error.status !== 404) throw error;
      }
      forget(key);
      setState("preparing", words.gone);
    } else {
      setState("preparing", words.preparing);
    }
    var created = await persist(function () {
      return send("POST", config.api, {
        purpose: purpose, filename: file.name, content_type: contentTypeOf(purpose, file), size: file.size
      });
    });
    remember(key, { id: created.id, name: file.name, size: file.size, received: 0, purpose: purpose });
    return created;
  }

  // Send the chunks from the server's offset to the end. Returns the upload after its last chunk.
  async function sendChunks(key, file, upload) {
    var received = upload.received, total = file.size, chunk = config.chunkBytes || 4194304;
    showProgress(received, total);
    while (received < total) {
      var start = received;
      var end = Math.min(start + chunk, total);
      setState("sending", words.sending);
      try {
        upload = await send("PUT", uploadUrl(upload.id), file.slice(start, end), {
          headers: { "Content-Range": "bytes " + start + "-" + (end - 1) + "/" + total },
          onProgress: function (loaded) { showProgress(start + loaded, total); }
        });
      } catch (error) {
        if (error instanceof HttpError && error.status !== 409 && error.status < 500 &&
            error.status !== 429) throw error;
        // The connection dropped, the chunk stalled, the server failed, or the upload is not
        // where this page thought (409: another tab sent that chunk, or completed the upload):
        // ask the server how far it got and go on from there.
        if (!(error instanceof HttpError)) {
          setState("retrying", say(words.retrying, { seconds: 1 }));
          await waitForNetwork(1000);
        }
        upload = await persist(function () { return send("GET", uploadUrl(upload.id)); });
        if (upload.status !== "receiving") return upload;
      }
      received = upload.received;
      showProgress(received, total);
      remember(key, { id: upload.id, name: file.name, size: total, received: received, purpose: upload.purpose });
    }
    return upload;
  }

  function finished(key, upload) {
    forget(key);
    showProgress(upload.size, upload.size);
    setState("complete", say(words.complete, { name: upload.filename }));
    root.dataset.uploadId = upload.id;
    if (config.detailUrl) {
      var link = document.createElement("a");
      link.href = config.detailUrl.replace(config.placeholder, upload.id);
      link.id = "upload-detail-link";
      link.textContent = words.view;
      ui.status.appendChild(document.createTextNode(" "));
      ui.status.appendChild(link);
    }
    var select = config.select ? $(config.select) : null;
    if (select) {
      var option = document.createElement("option");
      option.value = upload.id;
      option.textContent = upload.filename;
      select.appendChild(option);
      select.value = upload.id;
    }
    root.dispatchEvent(new CustomEvent("upload:complete", { detail: upload, bubbles: true }));
    listPending();
  }

  async function run() {
    var file = ui.file.files && ui.file.files[0];
    if (!file) { setState("idle", words.choose_file); return; }
    if (busy) return;
    busy = true;
    ui.start.disabled = true;
    ui.file.disabled = true;
    if (ui.purpose) ui.purpose.disabled = true;
    var purpose = currentPurpose(), key = fileKey(purpose, file);
    var hashed = 0, hashing = null, upload = null;
    try {
      upload = await uploadFor(key, purpose, file);
      root.dataset.uploadId = upload.id;
      if (upload.status === "complete") { finished(key, upload); return; }
      hashing = sha256OfFile(file, function (bytes) { hashed = bytes; });
      hashing.catch(function () { /* read again by the await below */ });
      upload = await sendChunks(key, file, upload);
      if (upload.status === "complete") { finished(key, upload); return; }
      if (upload.status === "failed") throw new HttpError(400, { detail: upload.failure_reason });
      while (hashed < file.size) {
        setState("checking", say(words.hashing, { percent: percentText(hashed, file.size) }));
        await Promise.race([hashing, wait(250)]);
      }
      var sha256 = await hashing;
      setState("checking", words.checking);
      for (;;) {
        try {
          upload = await persist(function () { return send("POST", uploadUrl(upload.id, "complete/"), { sha256: sha256 }); });
          break;
        } catch (error) {
          if (!(error instanceof HttpError) || error.code !== "upload_incomplete") throw error;
          upload = await sendChunks(key, file, await persist(function () { return send("GET", uploadUrl(upload.id)); }));
        }
      }
      finished(key, upload);
    } catch (error) {
      if (signedOut(error)) {
        setState("paused", words.signed_out);
      } else if (error instanceof HttpError) {
        // The server refused the file for good (its type, size, content or checksum): a new
        // upload is needed, so this one is not remembered. A 5xx that kept coming is kept.
        if (error.status < 500) forget(key);
        var detail = errorText(error);
        setState("failed", detail ? say(words.failed, { detail: detail }) : say(words.error, { status: error.status }));
      } else {
        setState("failed", say(words.failed, { detail: String(error && error.message || error) }));
      }
    } finally {
      busy = false;
      ui.start.disabled = false;
      ui.file.disabled = false;
      if (ui.purpose) ui.purpose.disabled = false;
    }
  }

  // Uploads this browser started and did not finish: how far each got, from the server.
  var listing = 0;
  function listPending() {
    if (!ui.pending) return;
    var generation = ++listing;
    ui.pending.textContent = "";
    rememberedKeys().forEach(function (key) {
      var entry = recall(key);
      if (!entry || !entry.id) { forget(key); return; }
      if (!(config.types || {})[entry.purpose]) return; // another page's kind of upload
      send("GET", uploadUrl(entry.id)).then(function (upload) {
        if (generation !== listing) return;
        if (upload.status !== "receiving") { forget(key); return; }
        var item = document.createElement("li");
        item.dataset.upload = upload.id;
        item.textContent = say(words.pending, { name: upload.filename, percent: percentText(upload.received, upload.size) });
        ui.pending.appendChild(item);
      }, function (error) {
        if (error instanceof HttpError && error.status === 404) forget(key);
      });
    });
  }

  ui.file.addEventListener("change", function () {
    var file = ui.file.files && ui.file.files[0];
    if (!file || busy) return;
    var entry = recall(fileKey(currentPurpose(), file));
    showProgress(entry ? entry.received : 0, file.size);
    setState("idle", entry ? say(words.pending_match, { percent: percentText(entry.received, file.size) }) : "");
  });
  ui.start.addEventListener("click", function (event) {
    event.preventDefault();
    run();
  });
  listPending();
})();
