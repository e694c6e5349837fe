#!/usr/bin/env python3
"""Writes static/mizumori/sounds/alert.wav, the alert board's new-alert cue: a short two-tone beep
made here (nothing downloaded, no licence to track). 16 kHz, 8-bit mono, 0.36 s.

    python3 bin/alert_sound.py
"""

import math
import wave
from pathlib import Path

RATE = 16000
TONES = ((880, 0.16), (0, 0.04), (1320, 0.16))  # Hz (0: silence), seconds
RAMP = 160  # samples of fade in and out, so the tones do not click

frames = bytearray()
for tone, seconds in TONES:
    count = int(RATE * seconds)
    for i in range(count):
        envelope = min(1.0, i / RAMP, (count - i) / RAMP)
        value = math.sin(2 * math.pi * tone * i / RATE) * 0.6 * envelope if tone else 0.0
        frames.append(int(128 + 127 * value))

target = Path(__file__).resolve().parent.parent / "static" / "mizumori" / "sounds" / "alert.wav"
target.parent.mkdir(parents=True, exist_ok=True)
with wave.open(str(target), "wb") as out:
    out.setnchannels(1)
    out.setsampwidth(1)
    out.setframerate(RATE)
    out.writeframes(bytes(frames))
print(target)
