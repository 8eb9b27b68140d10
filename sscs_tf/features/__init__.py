"""Video -> clip features: DeepMind's Inception-I3D RGB stream as a Keras 3 model (`i3d`), its
released Kinetics-400 weights read safely into it (`i3d_weights`), and what turns a video file
into the stacks of frames the model pools into one 1024-d feature per stack. The models and the
trainer never import this package: they start from the features it writes (docs/video.md).

May import (from sscs_tf): core.
"""
