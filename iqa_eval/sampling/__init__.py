"""Which items a cell judges: a sample that keeps the spread of quality, or the hard cases.

uniform (stage 1), proxies and features (what difficulty and diversity are measured by),
difficult (the greedy search of stage 2), subsets (the manifests that pin a selection), and
make_aug_kadid (the aug-KADID set, sampled from KADID).

Uniform-by-rank sampling is the study's stage-1 design: sort by quality and take evenly spaced
ranks, so a small sample still spans the whole range instead of clustering where most items lie.
In FR it works on two levels: groups (references) evenly spaced by their mean quality, then
distorted images evenly spaced inside each group. A set no larger than the sample is taken whole.

Difficult-sample selection is the study's stage 2. Each candidate gets a difficulty
d = (q̂ − q)² / (σ² + 1) from its MOS q and rating std σ (both min-max normalised over the
candidates) and a proxy prediction q̂: the mean of two expert measures, each mapped onto the
normalised MOS by the 4-parameter logistic fitted on the candidates. Items are then picked
greedily by d + λ·v(S), where v(S) = 1 − cos(φ, mean φ of the items picked so far) (1 while
nothing is picked) rewards semantic novelty, φ being a per-item feature vector normalised to
unit length along the feature axis. In FR the study picks references first, by the mean
difficulty of their images plus λ·v over reference features, then the most difficult images
of each. Proxies and features are pluggable; the defaults need neither a GPU nor a download.
"""


class SelectionError(ValueError):
    """Selection cannot proceed on these items or with these proxies; the message says why.

    The plugin and the command line report it as a user's problem in one line, as they do a
    DatasetError; it is not one, because sampling works on items and knows no dataset files.
    """
