"""Quotes an order in another currency: the event is validated with pydantic, the exchange rate comes over HTTP
with requests, the answer is serialised with orjson. All three come from the PipLambdaLayer."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import orjson
import requests
from pydantic import BaseModel, Field, ValidationError


class Order(BaseModel):
    order_id: str = Field(min_length=1, max_length=64)
    amount: Decimal = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    quote_in: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")


class Quote(BaseModel):
    order_id: str
    amount: Decimal
    currency: str
    rate: Decimal


def fetch_rate(source: str, target: str, session: requests.Session | None = None) -> Decimal:
    """The exchange rate from ``source`` to ``target``; 1 when they are the same (no request then)."""
    if source == target:
        return Decimal(1)
    http = session or requests.Session()
    response = http.get(os.environ["RATES_URL"], params={"from": source, "to": target}, timeout=5)
    response.raise_for_status()
    return Decimal(str(orjson.loads(response.content)["rates"][target]))


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    try:
        order = Order.model_validate(event)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        return {"statusCode": 400, "body": orjson.dumps({"errors": errors}, default=str).decode()}
    rate = fetch_rate(order.currency, order.quote_in)
    quote = Quote(order_id=order.order_id, amount=order.amount * rate, currency=order.quote_in, rate=rate)
    return {"statusCode": 200, "body": orjson.dumps(quote.model_dump(mode="json")).decode()}
