"""The region painter: a small U-Net that repaints an opened mouth inside an aligned crop, and its critic."""
