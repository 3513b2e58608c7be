"""Watchtower cameras (高空瞭望): configuration, the watcher, the smoke persistence rule, alerts and
their delivery (signed webhooks, loudspeakers).

Frames come from `vision.video.StreamSupervisor` (one decoding thread per stream); every
analysed frame goes through the runtime's one pipeline, and every confirmed finding is
recorded through `service.recording`, like photos and surveys.
"""
