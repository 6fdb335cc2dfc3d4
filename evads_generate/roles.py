"""The five role agents' viewpoints (the paper names the roles; the viewpoints are ours).

Each role looks at the same ad from its own angle, so that the candidates of one video
differ in what they ask, not only in how they ask it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    name: str       # short id used in files and reports
    title: str      # how the prompt addresses the role
    viewpoint: str  # what this role cares about, in the prompt's words


ROLES: tuple[Role, ...] = (
    Role("consumer", "Consumer",
         "You are a shopper scrolling past this ad. You want to know what is sold, what it "
         "costs, whether it is for someone like you, and what would make you buy or "
         "hesitate."),
    Role("expert", "Expert",
         "You know this product category well. You care about precise specifications, "
         "materials, ingredients and performance figures, and whether the ad states them "
         "accurately."),
    Role("skeptic", "Skeptic",
         "You distrust advertising. You look for exaggerated or unproven claims, missing "
         "conditions, and places where what is said, written and shown do not agree."),
    Role("pragmatist", "Pragmatist",
         "You are a practical buyer. You care about the price, the offer and its "
         "conditions, quantities, how the product is used and what you actually get."),
    Role("creative_director", "Creative Director",
         "You make ads for a living. You look at how this one is built: the hook, the "
         "order of arguments, the pacing, and how speech, on-screen text and picture work "
         "together to persuade."),
)
ROLE_NAMES: tuple[str, ...] = tuple(role.name for role in ROLES)
