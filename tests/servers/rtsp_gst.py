"""An RTSP server on loopback that streams an MP4's H.264 track: GStreamer's gst-rtsp-server.

Run by tests/servers/rtsp_server.py with the system's Python (python3-gi is a Debian package,
not a wheel): `python3 rtsp_gst.py PORT MOUNT CLIP`. Each client gets its own pipeline from the
clip's start (not shared), paced in real time by the server's clock, over RTP/UDP or
interleaved in the RTSP TCP connection (what vision.video asks for). FFmpeg cannot stand in:
its RTSP muxer only publishes to a server (`-rtsp_flags listen` is for receiving).
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402  (after require_version)


def main(port: str, mount: str, clip: str) -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # SPS/PPS before every keyframe, inserted by h264parse per access unit: rtph264pay's own
    # config-interval=-1 puts them before every IDR *slice*, which splits a multi-slice keyframe
    # into two pictures that FFmpeg can only conceal (seen: every keyframe twice, is_corrupt).
    factory.set_launch(f'( filesrc location="{clip}" ! qtdemux ! h264parse config-interval=-1 '
                       f"! rtph264pay name=pay0 pt=96 )")
    factory.set_shared(False)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port} (in use?)")
    print(f"serving rtsp://127.0.0.1:{port}{mount}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(*sys.argv[1:4])
