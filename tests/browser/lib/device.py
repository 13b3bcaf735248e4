"""A Python MQTT "device" on TCP (paho-mqtt 2.x, MQTT 5), driven by the browser suite.

Reads one JSON command per line on stdin and writes one JSON event per line on stdout:

  {"op": "connect", "host", "port", "username", "password", "client_id", "will": {...}?}
      -> {"ev": "connected", "reason_code": int}  (or {"ev": "connect_failed", ...})
  {"op": "subscribe", "topic", "qos"}           -> {"ev": "subscribe_sent", "topic", "mid"}, then
                                                   {"ev": "subscribed", "mid", "reason_codes": [...]}
  {"op": "publish", "topic", "payload_b64", "qos", "retain", "user_properties": [[k, v], ...]?}
      -> {"ev": "published", "topic", "mid"} once the broker acknowledged it (QoS > 0) or it was sent
  {"op": "disconnect"}                          -> {"ev": "disconnected"}, then exits

Every received message: {"ev": "message", "topic", "payload_b64", "qos", "retain",
"user_properties": [[k, v], ...], "sha256": hex, "length": int}.
"""

import base64
import hashlib
import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

out_lock = threading.Lock()


def emit(**event):
    with out_lock:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


client = None


def on_connect(_c, _u, _flags, reason_code, _props):
    if reason_code.is_failure:
        emit(ev="connect_failed", reason_code=reason_code.value)
    else:
        emit(ev="connected", reason_code=reason_code.value)


def on_subscribe(_c, _u, mid, reason_codes, _props):
    # The SUBACK may be handled before subscribe() has returned its mid to handle(): the Node
    # side pairs "subscribe_sent" and "subscribed" by mid, whichever comes first.
    emit(ev="subscribed", mid=mid, reason_codes=[rc.value for rc in reason_codes])


def on_publish(_c, _u, mid, _rc, _props):
    emit(ev="published", mid=mid)


def on_message(_c, _u, msg):
    props = getattr(msg, "properties", None)
    ups = list(getattr(props, "UserProperty", []) or []) if props else []
    emit(ev="message", topic=msg.topic, payload_b64=base64.b64encode(msg.payload).decode(),
         qos=msg.qos, retain=bool(msg.retain), user_properties=[list(p) for p in ups],
         sha256=hashlib.sha256(msg.payload).hexdigest(), length=len(msg.payload))


def on_disconnect(_c, _u, _flags, reason_code, _props):
    emit(ev="connection_lost", reason_code=reason_code.value)


def handle(cmd):
    global client
    op = cmd["op"]
    if op == "connect":
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cmd["client_id"],
                             protocol=mqtt.MQTTv5)
        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_publish = on_publish
        client.on_message = on_message
        client.on_disconnect = on_disconnect
        client.username_pw_set(cmd.get("username"), cmd.get("password"))
        client.max_inflight_messages_set(64)
        client.connect(cmd["host"], cmd["port"], keepalive=30, clean_start=True)
        client.loop_start()
    elif op == "subscribe":
        _rc, mid = client.subscribe(cmd["topic"], qos=cmd.get("qos", 0))
        emit(ev="subscribe_sent", topic=cmd["topic"], mid=mid)
    elif op == "publish":
        props = None
        if cmd.get("user_properties"):
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [tuple(p) for p in cmd["user_properties"]]
        info = client.publish(cmd["topic"], base64.b64decode(cmd.get("payload_b64", "")),
                              qos=cmd.get("qos", 0), retain=cmd.get("retain", False),
                              properties=props)
        emit(ev="publish_queued", topic=cmd["topic"], mid=info.mid)
    elif op == "disconnect":
        if client is not None:
            client.disconnect()
            client.loop_stop()
        emit(ev="disconnected")
        return False
    else:
        emit(ev="error", message=f"unknown op {op!r}")
    return True


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            if not handle(json.loads(line)):
                break
        except Exception as exc:  # reported to the test, which fails with it
            emit(ev="error", message=f"{type(exc).__name__}: {exc}")
    if client is not None:
        client.loop_stop()


if __name__ == "__main__":
    main()
