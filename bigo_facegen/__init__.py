"""bigo-facegen: generate a face video from one reference face and a sequence of facial keypoints."""
__version__ = "0.1.0"
