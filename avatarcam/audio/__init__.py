"""Sound: the microphone passed through to the call delayed to match the avatar, and a mouth that follows the voice.

`delay` keeps the two sound clocks apart (a ring buffer that reads by capture time, crossfading to each new
delay); `voice` turns the microphone into mouth shapes; `engine` runs the devices; `devices` names them.
"""
