"""Camera, video-file and demo inputs; virtual-camera, preview and file outputs."""
