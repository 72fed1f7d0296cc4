"""LEAD / CARLA route folders: format, rigs, frame conversion, reader and the embedded world's writer."""
