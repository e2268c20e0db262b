// A minimal MQTT 3.1.1 subscriber over WebSocket (subprotocol "mqtt"), enough for a dashboard:
// CONNECT (clean session), SUBSCRIBE, PUBLISH received at QoS 0 or 1 (PUBACK sent), PINGREQ to
// keep the connection, and reconnection. No dependencies (no npm).
"use strict";

class MqttWs {
  constructor(url, clientId, onMessage, onStatus) {
    this.url = url;
    this.clientId = clientId;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.topics = [];
    this.buf = new Uint8Array(0);
    this.nextId = 1;
    this.connect();
  }

  static utf8(s) { return new TextEncoder().encode(s); }

  static str(s) {
    const b = MqttWs.utf8(s);
    return [b.length >> 8, b.length & 255, ...b];
  }

  static packet(type, body) {
    const len = [];
    let n = body.length;
    do {
      let d = n % 128;
      n = Math.floor(n / 128);
      if (n > 0) d |= 128;
      len.push(d);
    } while (n > 0);
    return new Uint8Array([type, ...len, ...body]);
  }

  connect() {
    this.ws = new WebSocket(this.url, ["mqtt"]);
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => {
      const body = [...MqttWs.str("MQTT"), 4, 0x02, 0, 60, ...MqttWs.str(this.clientId)];
      this.ws.send(MqttWs.packet(0x10, body));
    };
    this.ws.onmessage = (ev) => this.receive(new Uint8Array(ev.data));
    this.ws.onclose = () => {
      clearInterval(this.ping);
      this.onStatus(false, "disconnected, retrying");
      setTimeout(() => this.connect(), 1000);
    };
    this.ws.onerror = () => this.onStatus(false, "cannot reach " + this.url);
  }

  subscribe(topic) {
    this.topics.push(topic);
    if (this.connected) this.sendSubscribe(topic);
  }

  sendSubscribe(topic) {
    const id = this.nextId++ & 0xffff || 1;
    this.ws.send(MqttWs.packet(0x82, [id >> 8, id & 255, ...MqttWs.str(topic), 1]));
  }

  receive(data) {
    const all = new Uint8Array(this.buf.length + data.length);
    all.set(this.buf);
    all.set(data, this.buf.length);
    let pos = 0;
    for (;;) {
      // fixed header: type byte, remaining length (1-4 bytes)
      if (all.length - pos < 2) break;
      let len = 0, mul = 1, i = pos + 1, done = false;
      while (i < all.length && i < pos + 5) {
        const d = all[i++];
        len += (d & 127) * mul;
        mul *= 128;
        if (!(d & 128)) { done = true; break; }
      }
      if (!done || all.length - i < len) break;
      this.handle(all[pos], all.subarray(i, i + len));
      pos = i + len;
    }
    this.buf = all.slice(pos);
  }

  handle(type, body) {
    switch (type >> 4) {
      case 2: // CONNACK
        if (body[1] !== 0) { this.onStatus(false, "refused (" + body[1] + ")"); return; }
        this.connected = true;
        this.onStatus(true, "connected to " + this.url);
        this.topics.forEach((t) => this.sendSubscribe(t));
        this.ping = setInterval(() => this.ws.send(new Uint8Array([0xc0, 0])), 30000);
        break;
      case 3: { // PUBLISH
        const qos = (type >> 1) & 3;
        const tlen = (body[0] << 8) | body[1];
        const topic = new TextDecoder().decode(body.subarray(2, 2 + tlen));
        let p = 2 + tlen;
        if (qos > 0) {
          this.ws.send(new Uint8Array([0x40, 2, body[p], body[p + 1]])); // PUBACK
          p += 2;
        }
        this.onMessage(topic, new TextDecoder().decode(body.subarray(p)));
        break;
      }
      default: // SUBACK, PINGRESP: nothing to do
        break;
    }
  }
}
