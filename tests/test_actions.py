"""``bot.actions``: the parts of the use cases that need no Discord (the use cases themselves run end to end in
``tests/e2e``)."""
from __future__ import annotations

from bot import messages as msg
from bot.actions import offered_candidates
from morph.request import RenderRequest


def test_candidates_offered_per_segment_stay_within_nine():
    """A plain morph and a refine offer 5 candidates; a chain fewer per segment, never more than 9 in all
    (the 1️⃣..9️⃣ reactions)."""
    dog, cat, bird, fish = "a dog", "a cat", "a bird", "a fish"
    cases = [(RenderRequest([dog, cat]), 5), (RenderRequest([dog, cat], loop=True), 4),
             (RenderRequest(prompts=[dog, cat, bird]), 4), (RenderRequest(prompts=[dog, cat, bird, fish]), 3),
             (RenderRequest(prompts=[dog, cat, bird], loop=True), 3),
             (RenderRequest(prompts=[dog, cat, bird, fish], loop=True), 2),
             (RenderRequest(prompts=[dog, cat, bird, fish], loop=True).refine(1.25, 1.5, 8), 5)]
    for request, per_segment in cases:
        assert offered_candidates(request) == per_segment, request
        assert per_segment * (len(request.knots()) - 1) <= len(msg.KEYCAPS)
