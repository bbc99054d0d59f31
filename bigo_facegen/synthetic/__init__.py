"""Procedural face videos in the BIGO release layout, with exact `bigo106` keypoints: the embedded default data.

    template     the 3-D face template (106 points, skull, hairline); `Identity` deforms it, `Expression` moves it
    pose         `Pose` (yaw/pitch/roll, weak perspective) and `PosedFace`, the template placed in a frame
    canvas       antialiased drawing into the frame, its `Part` label map and the occlusion mask
    head, features, accessories
                 drawing the head (hair, body, ears, skin), the features (brows, eyes, nose, mouth) and what is worn
    render       `render_frame`: one face drawn back to front into its `Scene`, an `Occluder`, the frame's annotation
    people, plan random identities and accessories; `plan_video` / `render_video`: a random video of a tier
    dataset      `generate`: the videos and annotations.json written to a folder

Everything is drawn from the projected points with antialiased OpenCV polygons in painter's order, so the keypoints
are where the features are: the eye, brow and lip outlines are splines through their keypoints, the pupils are
centred on 104/105, the skin's outline runs through the contour.

Annotation decisions (`render_frame` makes them, `generate` writes them):

- flag 2: visible. Flag 1: hidden, by something drawn in front of the face (hair locks, fringe, hat, sunglasses,
  earrings, a passing object: decided on the very pixels drawn), by the head itself (a point whose surface faces away
  from the camera: the far-side contour on a large yaw), by a closed eyelid (a pupil outside the eye opening), or
  because it lies outside the frame; such points keep their true coordinates, possibly negative or past the border.
  Flag 0 is never written: every point of a face in the frame has a position.
- bbox: a detector-like square. The face's extent (the 106 points and the top of the forehead) clipped to the frame,
  then a square of `BOX_SCALE` times its longer side around the clipped extent's centre, so that, as in the real
  release's boxes, forehead, chin and some hair are inside; it may reach past the frame.
- A frame whose face extent lies wholly outside the frame has `"bbox": []` and `"keypoint": []`.

Tiers follow the challenge: easy = small pose change and few accessories, medium = moderate, hard = large pose change
(yaw up to about 60 degrees), many accessories (glasses or sunglasses, hats, earrings), passing occluders and faces
that leave the frame. Several videos share an identity (recorded as `"identity"`), in different tiers.
"""
from bigo_facegen.bigo_folder import TIERS
from bigo_facegen.synthetic.accessories import HAT_STYLES, Accessories
from bigo_facegen.synthetic.canvas import Part
from bigo_facegen.synthetic.dataset import FPS, TIER_ID_BASE, generate, video_ids
from bigo_facegen.synthetic.people import random_accessories, random_identity
from bigo_facegen.synthetic.plan import VideoPlan, plan_video, render_video
from bigo_facegen.synthetic.pose import Pose
from bigo_facegen.synthetic.render import BOX_SCALE, Occluder, RenderedFrame, Scene, plain_scene, render_frame
from bigo_facegen.synthetic.template import HAIR_STYLES, NUM_POINTS, Expression, Identity, face_points_3d

__all__ = [
    "TIERS", "TIER_ID_BASE", "FPS", "BOX_SCALE", "NUM_POINTS", "HAIR_STYLES", "HAT_STYLES", "Part", "Identity",
    "Expression", "Pose", "Accessories", "Occluder", "Scene", "RenderedFrame", "VideoPlan", "face_points_3d",
    "plain_scene", "render_frame", "random_identity", "random_accessories", "plan_video", "render_video", "video_ids",
    "generate",
]
