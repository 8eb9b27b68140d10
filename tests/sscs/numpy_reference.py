"""The Sscs branch in float64 numpy, written from docs/sscs.md and the paper (Sec. 3.3-3.4).

It works one example at a time with explicit index sets (members are selected, not masked),
so it shares no code path with the Keras implementation. Weights are read from a built
`SscsBranch` by `branch_params`; everything else here is plain numpy.
"""

import numpy as np

EOS = 2  # the tokenizer's <eos> id, also the decoder's start symbol


# ----------------------------------------------------------------------------- weights
def _dense(layer, activation=None):
  kernel, bias = (np.asarray(v, np.float64) for v in layer.get_weights())
  return {"kernel": kernel, "bias": bias, "activation": activation}


def _head(head, kind):
  if kind == "linear":
    return [_dense(head)]
  hidden, out = head.layers
  return [_dense(hidden, "relu"), _dense(out)]


def branch_params(branch):
  """The weights of a built SscsBranch as float64 numpy arrays."""
  # Phi is absent when nothing reads Y (no contrastive term, no cross-attention).
  params = {"psi": _head(branch.psi, branch.head),
            "phi": _head(branch.phi, branch.head) if branch.phi is not None else None}
  function = branch.support_function
  if function is not None and function.projection is not None:
    kernel, bias = function.projection.get_weights()
    params["projection"] = {"kernel": np.asarray(kernel, np.float64),
                            "bias": np.asarray(bias, np.float64)}
  if branch.pooling is not None:
    params["pooling"] = {"hidden": _dense(branch.pooling.hidden, "tanh"),
                         "score": np.asarray(branch.pooling.score.get_weights()[0], np.float64)}
  if branch.decoder is not None:
    decoder = branch.decoder
    kernel, recurrent, bias = (np.asarray(v, np.float64) for v in decoder.gru.get_weights())
    params["decoder"] = {
        "initial_state": _dense(decoder.initial_state),
        "embedding": np.asarray(decoder.embedding.get_weights()[0], np.float64),
        "gru": {"kernel": kernel, "recurrent": recurrent, "bias": bias},
        "logits": _dense(decoder.logits)}
  return params


# ----------------------------------------------------------------------------- maths
def apply_dense(x, layer):
  y = x @ layer["kernel"] + layer["bias"]
  if layer["activation"] == "relu":
    return np.maximum(y, 0.0)
  if layer["activation"] == "tanh":
    return np.tanh(y)
  return y


def apply_head(x, layers):
  for layer in layers:
    x = apply_dense(x, layer)
  return x


def l2_normalize(v):
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def softmax(z):
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max())
  return e / e.sum()


def logsumexp(z):
  z = np.asarray(z, np.float64).ravel()
  return z.max() + np.log(np.exp(z - z.max()).sum())


def sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


# ----------------------------------------------------------------------------- GT clips
def gt_clips(start, end, duration, num_valid):
  """Indices of M_i: clip t spans [t*d/n, (t+1)*d/n]; GT when at least half of it lies in
  [start, end]; the clip holding the midpoint (clamped into the video) is always GT."""
  length = duration / num_valid
  members = set()
  for t in range(num_valid):
    lo, hi = t * length, (t + 1) * length
    if max(0.0, min(hi, end) - max(lo, start)) >= 0.5 * length:
      members.add(t)
  middle = 0.5 * (start + end)
  members.add(min(max(int(np.floor(middle / length)), 0), num_valid - 1))
  return sorted(members)


def support_members(kind, num_valid, gt):
  """Indices of S_i and whether a Non-GT set was empty and fell back to V-SS."""
  video = list(range(num_valid))
  if kind == "video":
    return video, False
  if kind == "gt":
    return list(gt), False
  non_gt = [t for t in video if t not in gt]
  return (non_gt, False) if non_gt else (video, True)


# ----------------------------------------------------------------------------- functions
def support_vector(function, clips, members, sentence, tau, projection=None):
  """w_i (before normalisation). clips [T, D] (padded rows zero), members: indices."""
  s = clips[members]  # the members in clip order, [m, D]
  if function == "ca":  # Eq. 4-5
    return softmax(s @ sentence / tau) @ s
  if function == "sa":  # Eq. 8: Q = S^T S / tau with clips as the columns of S
    q = s @ s.T / tau
    return softmax(q.sum(axis=1)) @ s
  if function == "mp":
    return s.max(axis=0)
  if function == "ap":
    return s.mean(axis=0)
  zeroed = np.zeros_like(clips)
  zeroed[members] = s
  if function == "fc":
    return zeroed.reshape(-1) @ projection["kernel"] + projection["bias"]
  if function == "conv":  # kernel [3, D_in, D_out], 'same' zero padding
    kernel = projection["kernel"]
    padded = np.concatenate([np.zeros_like(zeroed[:1]), zeroed, np.zeros_like(zeroed[:1])])
    out = np.stack([sum(padded[t + k] @ kernel[k] for k in range(3))
                    for t in range(len(zeroed))]) + projection["bias"]
    return out[members].mean(axis=0)
  raise ValueError(function)


# ----------------------------------------------------------------------------- objectives
def ss_contrast(w, sentences, tau):
  """Eq. 6 per sentence; w [B, D] and sentences [B, D] unit vectors."""
  logits = w @ sentences.T / tau
  return np.array([logsumexp(logits[i]) - logits[i, i] for i in range(len(w))])


def gtc_contrast(clips, num_valid, gts, sentences, tau):
  """Eq. 2 per sentence: P = GT clips of its video; N = its other valid clips and every
  valid clip of the other videos (so P + N is every valid clip of the batch)."""
  out = []
  for i, y in enumerate(sentences):
    every = np.concatenate([clips[j, :num_valid[j]] @ y / tau for j in range(len(clips))])
    positive = clips[i, gts[i]] @ y / tau
    out.append(logsumexp(every) - logsumexp(positive))
  return np.array(out)


def attentive_pool(clips, members, pooling):
  s = clips[members]
  scores = apply_dense(s, pooling["hidden"]) @ pooling["score"][:, 0]
  return softmax(scores) @ s


def gru_step(x, h, gru):
  """Keras 3 GRU cell, reset_after=True: gates z, r, h in the kernel columns; the bias has
  an input row and a recurrent row."""
  units = h.shape[-1]
  xp = x @ gru["kernel"] + gru["bias"][0]
  hp = h @ gru["recurrent"] + gru["bias"][1]
  z = sigmoid(xp[:units] + hp[:units])
  r = sigmoid(xp[units:2 * units] + hp[units:2 * units])
  candidate = np.tanh(xp[2 * units:] + r * hp[2 * units:])
  return z * h + (1.0 - z) * candidate


def caption_nll(w, words, decoder):
  """-log p(L | w): reads <eos> w_1..w_n, predicts w_1..w_n <eos> (n + 1 terms)."""
  h = apply_dense(w, decoder["initial_state"])
  inputs, targets = [EOS] + list(words), list(words) + [EOS]
  nll = 0.0
  for token, target in zip(inputs, targets):
    h = gru_step(decoder["embedding"][token], h, decoder["gru"])
    logits = apply_dense(h, decoder["logits"])
    nll += logsumexp(logits) - logits[target]
  return nll


# ----------------------------------------------------------------------------- the branch
def branch_outputs(params, config, inputs):
  """Per-example outputs of the branch: dict of float64 [B] arrays like SscsBranch.call."""
  mask = np.asarray(inputs["clip_mask"], np.float64)
  num_valid = [int(round(n)) for n in mask.sum(axis=1)]
  feats = np.asarray(inputs["clip_features"], np.float64)
  clips = np.zeros(feats.shape[:2] + (config["dim"],))
  for b, n in enumerate(num_valid):
    clips[b, :n] = l2_normalize(apply_head(feats[b, :n], params["psi"]))
  sentences = None
  if params["phi"] is not None:
    sentences = l2_normalize(apply_head(np.asarray(inputs["sentence_feature"], np.float64),
                                        params["phi"]))
  gts = [gt_clips(float(inputs["start"][b]), float(inputs["end"][b]),
                  float(inputs["duration"][b]), n) for b, n in enumerate(num_valid)]
  out = {"gt_clips": np.array([len(g) for g in gts], np.float64)}
  tau = config["tau"]
  if config["mode"] == "ss":
    w, fell_back = [], []
    for b, n in enumerate(num_valid):
      members, fell = support_members(config["support"], n, gts[b])
      w.append(support_vector(config["function"], clips[b], members,
                              None if sentences is None else sentences[b], tau,
                              params.get("projection")))
      fell_back.append(float(fell))
    w = l2_normalize(np.array(w))
    out["fell_back"] = np.array(fell_back)
    if config["lambda1"] > 0:
      out["contrast"] = ss_contrast(w, sentences, tau)
  else:
    out["fell_back"] = np.zeros(len(num_valid))
    if config["lambda2"] > 0:
      w = np.array([attentive_pool(clips[b], gts[b], params["pooling"])
                    for b in range(len(num_valid))])
    if config["lambda1"] > 0:
      out["contrast"] = gtc_contrast(clips, num_valid, gts, sentences, tau)
  if config["lambda2"] > 0:
    words = [list(inputs["word_ids"][b, :int(inputs["num_words"][b])])
             for b in range(len(num_valid))]
    out["caption"] = np.array([caption_nll(w[b], words[b], params["decoder"])
                               for b in range(len(num_valid))])
  return out


def losses(outputs, config, global_batch_size):
  """Eq. 1's branch terms: contrast summed (or averaged), caption averaged."""
  terms = {}
  if "contrast" in outputs:
    terms["contrast"] = outputs["contrast"].sum()
    if config["reduction"] == "mean":
      terms["contrast"] /= global_batch_size
  if "caption" in outputs:
    terms["caption"] = outputs["caption"].sum() / global_batch_size
  terms["total"] = (config["lambda1"] * terms.get("contrast", 0.0)
                    + config["lambda2"] * terms.get("caption", 0.0))
  return terms
