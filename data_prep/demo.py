r"""A small synthetic Charades-STA, in the real file formats, with the paper's structure.

  python -m data_prep.demo --output_dir DIR [--seed 0] [--noconvert]

writes DIR/raw/ (charades_sta_{train,test}.txt, Charades_v1_{train,test}.csv,
features.hdf5, glove.demo.300d.txt) and then runs the same converter as real Charades-STA
(`data_prep.charades_sta`) into DIR/tfrecords/.

The world (docs/demo_data.md): every video shows a person and two or three objects in every
clip (the entities); two or three actions happen in it, each only inside its ground-truth
interval; each action is described by one or two sentences that name both the action and its
object ("a person opens the door."). Actions and objects recur across videos and a video
often holds two actions on the same object (opens / closes the door), so a model has to
ground the verb in time, not memorise videos or spot objects. Clip features are sums of
fixed random directions (one per entity, one per verb, one per action-object interaction)
plus noise, which is what makes Non-GT clips similar to the sentence, as in Fig. 2 of the
paper.
"""

import csv
import io
import os
import string

import h5py
import numpy as np
from absl import flags, logging

from sscs_tf import cli  # first: quiets TensorFlow's start-up  # isort: skip
from data_prep import charades_sta, convert
from sscs_tf.core import fileio

OBJECTS = ("door", "window", "cup", "book", "laptop", "phone", "chair", "towel", "bag", "box",
           "shoes", "food", "light", "refrigerator", "blanket", "broom")
# verb: (third person, gerund, objects it applies to)
VERBS = {
    "open": ("opens", "opening", ("door", "window", "laptop", "refrigerator", "box", "bag",
                                  "book")),
    "close": ("closes", "closing", ("door", "window", "laptop", "refrigerator", "box", "bag",
                                    "book")),
    "hold": ("holds", "holding", ("cup", "book", "phone", "towel", "bag", "box", "shoes",
                                  "food", "blanket", "broom")),
    "put down": ("puts down", "putting down", ("cup", "book", "phone", "towel", "bag", "box",
                                                "shoes", "food", "blanket", "broom")),
    "take": ("takes", "taking", ("cup", "book", "phone", "towel", "shoes", "food",
                                 "blanket", "broom")),
    "sit on": ("sits on", "sitting on", ("chair",)),
    "eat": ("eats", "eating", ("food",)),
    "drink from": ("drinks from", "drinking from", ("cup",)),
    "turn on": ("turns on", "turning on", ("light", "laptop")),
    "turn off": ("turns off", "turning off", ("light", "laptop")),
}
TEMPLATES = ("a person {third} the {obj}.", "person {third} a {obj}.",
             "the person is {gerund} the {obj}.", "a person {third} the {obj} in the room.")
# The mutual-exclusion setting gives every action of a video the same verb, on different
# objects: verbs that apply to many objects.
SHARED_VERBS = ("open", "close", "hold", "put down", "take")
SETTINGS = ("additive", "mutual_exclusion")
SCENES = ("Kitchen", "Bedroom", "Living room", "Hallway", "Bathroom")
CSV_HEADER = ("id", "subject", "scene", "quality", "relevance", "verified", "script", "objects",
              "descriptions", "actions", "length")


class World:
  """Fixed random feature directions for entities, verbs and verb-object interactions."""

  def __init__(self, rng: np.random.Generator, dim: int):
    pairs = [(v, o) for v, (_, _, objs) in VERBS.items() for o in objs]
    count = 1 + len(OBJECTS) + len(VERBS) + len(pairs)
    # Orthonormal directions when D allows it (D >= 87), so concepts do not leak into each
    # other; random unit vectors otherwise.
    basis = rng.normal(size=(dim, count))
    if dim >= count:
      basis = np.linalg.qr(basis)[0]
    basis = (basis / np.linalg.norm(basis, axis=0)).T
    parts = np.split(basis, np.cumsum([1, len(OBJECTS), len(VERBS)]))
    self.dim = dim
    self.person = parts[0][0]
    self.objects = dict(zip(OBJECTS, parts[1]))
    self.verbs = dict(zip(VERBS, parts[2]))
    self.interactions = dict(zip(pairs, parts[3]))


def _video_id(rng, taken: set) -> str:
  alphabet = string.ascii_uppercase + string.digits
  while True:
    vid = "".join(rng.choice(list(alphabet), 5))
    if vid not in taken:
      taken.add(vid)
      return vid


def _actions(rng, scene_objects, duration, verb=None):
  """2-3 (verb, object, start, end) with disjoint intervals inside the video; with `verb`,
  that verb on distinct scene objects (the mutual-exclusion setting)."""
  if verb is None:
    candidates = [(v, o) for v, (_, _, objs) in VERBS.items() for o in objs
                  if o in scene_objects]
  else:
    candidates = [(verb, o) for o in scene_objects]
  count = min(int(rng.integers(2, 4)), len(candidates))
  chosen = [candidates[i] for i in rng.choice(len(candidates), count, replace=False)]
  cuts = np.sort(rng.uniform(0, duration, count - 1))
  bounds = np.concatenate([[0.0], cuts, [duration]])
  actions = []
  for (verb, obj), lo, hi in zip(chosen, bounds[:-1], bounds[1:]):
    length = min(hi - lo, rng.uniform(3.0, 12.0))
    if length < 1.5:
      continue
    start = lo + rng.uniform(0.0, max(hi - lo - length, 0.0))
    actions.append((verb, obj, round(start, 1), round(start + length, 1)))
  return actions


def _features(rng, world, scene_objects, actions, duration, num_clips, setting):
  """[T, D]: entities in every clip; an action's directions only inside its interval.

  "additive": the action adds its verb and a verb-object interaction direction.
  "mutual_exclusion": no interaction direction; the handled object shows more strongly
  inside the action (as a held cup fills the frame), so the action is told apart from the
  video's other actions only through an entity that is also in every other clip.
  """
  presence = rng.uniform(0.6, 1.0, size=len(scene_objects) + 1)
  entities = presence[0] * world.person + sum(
      p * world.objects[o] for p, o in zip(presence[1:], scene_objects))
  clip_centers = (np.arange(num_clips) + 0.5) * duration / num_clips
  feats = np.tile(entities, (num_clips, 1))
  for verb, obj, start, end in actions:
    inside = ((clip_centers >= start) & (clip_centers <= end)).astype(np.float64)[:, None]
    if setting == "additive":
      feats += inside * (1.2 * world.verbs[verb] + 0.8 * world.interactions[(verb, obj)])
    else:
      feats += inside * (1.2 * world.verbs[verb] + 1.0 * world.objects[obj])
  feats += rng.normal(scale=0.35, size=feats.shape)
  return feats.astype(np.float32)


def _sentences(rng, verb, obj):
  third, gerund, _ = VERBS[verb]
  picks = rng.choice(len(TEMPLATES), int(rng.integers(1, 3)), replace=False)
  return [TEMPLATES[i].format(third=third, gerund=gerund, obj=obj) for i in picks]


def _scene(rng, setting):
  """(scene objects, verb shared by every action or None)."""
  if setting == "additive":
    return list(rng.choice(OBJECTS, int(rng.integers(2, 4)), replace=False)), None
  verb = str(rng.choice(SHARED_VERBS))
  objects = VERBS[verb][2]
  return list(rng.choice(objects, int(rng.integers(2, 4)), replace=False)), verb


def make_split(rng, world, num_videos, taken_ids, with_release_quirks, setting="additive"):
  """Returns (annotation lines, csv rows, {video_id: features})."""
  lines, rows, features = [], [], {}
  for index in range(num_videos):
    vid = _video_id(rng, taken_ids)
    duration = round(float(rng.uniform(18.0, 40.0)), 2)
    scene_objects, verb = _scene(rng, setting)
    actions = _actions(rng, scene_objects, duration, verb)
    num_clips = int(round(duration * 2))
    features[vid] = _features(rng, world, scene_objects, actions, duration, num_clips,
                              setting)
    for verb, obj, start, end in actions:
      for sentence in _sentences(rng, verb, obj):
        lines.append(f"{vid} {start:.1f} {end:.1f}##{sentence}")
    rows.append((vid, f"S{index:03d}", str(rng.choice(SCENES)), "6", "7", "Yes", "",
                 ";".join(scene_objects), "", "", f"{duration:.2f}"))
  if with_release_quirks:
    # As in the real release: a reversed interval (dropped by 2D-TAN's protocol, kept by
    # LGI's) and an end time past the video's length (clipped by 2D-TAN's).
    vid, duration = rows[0][0], float(rows[0][-1])
    lines.append(f"{vid} 9.0 4.0##a person holds the {rows[0][7].split(';')[0]}.")
    lines.append(f"{vid} {duration - 3:.1f} {duration + 2.5:.1f}##a person "
                 f"takes the {rows[0][7].split(';')[0]}.")
  return lines, rows, features


def write_raw(output_dir: str, seed: int = 0, num_train_videos: int = 400,
              num_test_videos: int = 120, feature_dim: int = 128,
              setting: str = "additive") -> dict:
  """Writes the raw Charades-STA-format files; returns their paths."""
  if setting not in SETTINGS:
    raise ValueError(f"Unknown demo setting {setting!r}; known: {SETTINGS}.")
  rng = np.random.default_rng(seed)
  world = World(rng, feature_dim)
  os.makedirs(output_dir, exist_ok=True)
  taken, all_features = set(), {}
  for split, count in (("train", num_train_videos), ("test", num_test_videos)):
    lines, rows, feats = make_split(rng, world, count, taken, split == "train", setting)
    all_features.update(feats)
    fileio.atomic_write_text(os.path.join(output_dir, f"charades_sta_{split}.txt"),
                             "".join(line + "\n" for line in lines))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(rows)
    fileio.atomic_write_text(os.path.join(output_dir, f"Charades_v1_{split}.csv"),
                             buffer.getvalue())
  features_path = os.path.join(output_dir, "features.hdf5")
  with fileio.atomic_path(features_path) as tmp:
    with h5py.File(tmp, "w") as f:
      for vid in sorted(all_features):
        f.create_dataset(vid, data=all_features[vid])
  glove_path = os.path.join(output_dir, "glove.demo.300d.txt")
  _write_glove(glove_path, rng)
  return {"annotation_dir": output_dir, "features": features_path, "glove": glove_path}


def _write_glove(path, rng):
  """Random 300-d vectors in the GloVe text format for the demo's words, so the demo runs
  the frozen-embedding path of 2D-TAN end to end."""
  words = {"a", "person", "the", "is", "in", "room", "'s"} | set(OBJECTS)
  for third, gerund, _ in VERBS.values():
    words.update(third.split() + gerund.split())
  vectors = rng.normal(scale=0.4, size=(len(words), 300))
  fileio.atomic_write_text(path, "".join(
      w + " " + " ".join(f"{x:.5f}" for x in v) + "\n" for w, v in zip(sorted(words), vectors)))


def build(output_dir: str, seed: int = 0, convert_records: bool = True, **sizes) -> str:
  """Writes DIR/raw and, unless told not to, converts it into DIR/tfrecords."""
  raw = write_raw(os.path.join(output_dir, "raw"), seed, **sizes)
  records_dir = os.path.join(output_dir, "tfrecords")
  if convert_records:
    splits = charades_sta.read_splits(raw["annotation_dir"],
                                      val_fraction=charades_sta.VAL_FRACTION)
    convert.convert("charades_sta", splits, raw["features"], records_dir,
                    convert.Options(num_shards=4, glove=raw["glove"]))
  return records_dir


FLAGS = flags.FLAGS


def run():
  flags.DEFINE_string("output_dir", None, "Where to write raw/ and tfrecords/.", required=True)
  flags.DEFINE_integer("seed", 0, "Random seed; the same seed writes the same files.")
  flags.DEFINE_integer("num_train_videos", 400, "Training videos.")
  flags.DEFINE_integer("num_test_videos", 120, "Test videos.")
  flags.DEFINE_integer("feature_dim", 128, "Feature width D.")
  flags.DEFINE_enum("setting", "additive", SETTINGS, "additive: actions add their own "
                    "directions; mutual_exclusion: a video's actions share their verb and "
                    "differ only by an object seen in every clip (docs/demo_data.md).")
  flags.DEFINE_bool("convert", True, "Also convert raw/ into tfrecords/.")

  def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    records = build(FLAGS.output_dir, FLAGS.seed, FLAGS.convert,
                    num_train_videos=FLAGS.num_train_videos,
                    num_test_videos=FLAGS.num_test_videos, feature_dim=FLAGS.feature_dim,
                    setting=FLAGS.setting)
    raw = os.path.join(FLAGS.output_dir, "raw")
    print(f"Demo Charades-STA files: {raw}")
    if FLAGS.convert:
      print(f"TFRecords: {records} (same as: python -m data_prep.charades_sta "
            f"--annotation_dir {raw} --features {raw}/features.hdf5 --glove "
            f"{raw}/glove.demo.300d.txt --num_shards 4 --output_dir {records})")

  cli.run("sscs-prep-demo", main)


if __name__ == "__main__":
  run()
