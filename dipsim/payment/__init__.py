"""Payment: the one ordered chain from grouped cases to each hospital's money (`chain`), and the policy's terms it
applies, resolved once per run (`terms`). See `chain`'s docstring for the steps."""

from __future__ import annotations


def __getattr__(name: str):
    # lazily: `dipsim.pricing` and `dipsim.review` import `payment.terms`, and the chain imports them
    if name in ("CaseSet", "PaymentRun", "STEPS", "rules", "run_chain", "price_cases", "settle_pools"):
        from dipsim.payment import chain

        return getattr(chain, name)
    raise AttributeError(name)
