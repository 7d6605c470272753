"""MQTT: an insulin pump or CGM bridge publishing readings to a ``mosquitto`` broker.

The client (``paho-mqtt``) keeps one session open with a short keep-alive, so the capture
shows both periodic PUBLISH messages and PINGREQ/PINGRESP keep-alives between them; paho
reconnects by itself when the broker goes away. The broker is the real ``mosquitto``,
started by the runner with the config ``broker_config`` writes.

Config: ``server`` (name), ``port``, ``client_id``, ``topic``, ``every``, ``keepalive``,
``dns_server``.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from monitor.lab.agent import Config, cadence, patient, resolve


def broker_config(path: Path, bind: str, port: int) -> Path:
    """Write a mosquitto config: anonymous clients on ``bind``:``port``, no persistence."""
    path.write_text(
        f"listener {port} {bind}\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "log_dest stderr\n"
        "log_type error\nlog_type warning\nlog_type notice\n",
        encoding="utf-8",
    )
    return path


def client(cfg: Config) -> None:
    """Publish a reading every ``every`` seconds on ``topic``/``client_id``/reading."""
    client_id = str(cfg["client_id"])
    keepalive = max(2, round(float(cfg.get("keepalive", 60))))
    topic = f"{cfg.get('topic', 'ward/telemetry')}/{client_id}/reading"
    mqttc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)  # type: ignore[attr-defined]
    mqttc.reconnect_delay_set(min_delay=1, max_delay=5)
    time.sleep(float(cfg.get("first", 0.0)))
    address = resolve(cfg, str(cfg["server"]))
    mqttc.connect_async(address, int(cfg.get("port", 1883)), keepalive=keepalive)
    mqttc.loop_start()
    p = patient(random.randrange(8))
    glucose = random.uniform(90, 160)

    def publish() -> None:
        nonlocal glucose
        glucose = min(350.0, max(45.0, glucose + random.gauss(0, 6)))
        reading = {
            "device": client_id,
            "patient_id": p["mrn"],
            "glucose_mg_dl": round(glucose),
            "trend": random.choice(["flat", "up", "down"]),
            "time": round(time.time()),
        }
        if mqttc.is_connected():
            mqttc.publish(topic, json.dumps(reading), qos=1)

    try:
        cadence(float(cfg["every"]), publish)
    finally:
        mqttc.disconnect()
        mqttc.loop_stop()
