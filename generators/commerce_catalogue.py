"""The product catalogue the commerce generator's shoppers buy from: categories, prices, names.

Categories carry their own price range, product nouns and search terms, and a popularity weight;
:func:`build_catalogue` draws a deterministic catalogue from them (same size and seed, same products),
so tests can recompute what the generator sold.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

__all__ = ["ADJECTIVES", "CATEGORIES", "CATEGORY_WEIGHTS", "Product", "build_catalogue"]

# Category -> (price range in USD, product nouns, search terms).
CATEGORIES: dict[str, tuple[tuple[float, float], tuple[str, ...], tuple[str, ...]]] = {
    "Electronics": (
        (19.0, 2499.0),
        ("Headphones", "Smartphone", "Laptop", "Monitor", "Keyboard", "Speaker", "Smartwatch", "Camera"),
        ("wireless headphones", "4k monitor", "gaming laptop", "bluetooth speaker", "usb-c charger"),
    ),
    "Books": (
        (6.0, 89.0),
        ("Novel", "Cookbook", "Biography", "Atlas", "Poetry Collection", "Textbook", "Comic"),
        ("bestseller", "python programming", "fantasy novel", "history of brazil", "cookbook"),
    ),
    "Clothing": (
        (9.0, 249.0),
        ("T-Shirt", "Jeans", "Jacket", "Sneakers", "Dress", "Hoodie", "Cap", "Socks"),
        ("running shoes", "winter jacket", "cotton t-shirt", "summer dress", "denim"),
    ),
    "Home & Kitchen": (
        (8.0, 699.0),
        ("Blender", "Coffee Maker", "Frying Pan", "Lamp", "Pillow", "Knife Set", "Vacuum"),
        ("air fryer", "espresso machine", "non-stick pan", "led lamp", "bed sheets"),
    ),
    "Sports": (
        (7.0, 899.0),
        ("Yoga Mat", "Dumbbells", "Bicycle", "Tennis Racket", "Football", "Water Bottle", "Tent"),
        ("yoga mat", "adjustable dumbbells", "mountain bike", "camping tent", "football"),
    ),
    "Toys": (
        (5.0, 199.0),
        ("Puzzle", "Building Blocks", "Doll", "Board Game", "RC Car", "Plush Bear"),
        ("lego", "board game", "puzzle 1000 pieces", "rc car", "plush"),
    ),
    "Beauty": (
        (4.0, 159.0),
        ("Shampoo", "Perfume", "Face Cream", "Lipstick", "Hair Dryer", "Sunscreen"),
        ("perfume", "vitamin c serum", "sunscreen spf 50", "hair dryer", "shampoo"),
    ),
    "Grocery": (
        (1.5, 49.0),
        ("Coffee Beans", "Olive Oil", "Chocolate", "Green Tea", "Pasta", "Granola"),
        ("arabica coffee", "olive oil", "dark chocolate", "green tea", "gluten free pasta"),
    ),
}
# Relative popularity of categories in sessions.
CATEGORY_WEIGHTS = {
    "Electronics": 24,
    "Clothing": 18,
    "Home & Kitchen": 14,
    "Books": 12,
    "Sports": 10,
    "Beauty": 9,
    "Toys": 7,
    "Grocery": 6,
}
ADJECTIVES = ("Pro", "Classic", "Eco", "Ultra", "Compact", "Deluxe", "Smart", "Essential", "Premium", "Mini")


@dataclass(frozen=True)
class Product:
    """One product of the catalogue, as events carry it (:meth:`as_json`)."""

    id: str
    name: str
    category: str
    price: float

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "category": self.category, "price": self.price}


def build_catalogue(size: int = 240, seed: int = 7) -> list[Product]:
    """A deterministic catalogue of ``size`` products spread over :data:`CATEGORIES`."""
    rng = random.Random(seed)
    names = list(CATEGORIES)
    products = []
    for index in range(size):
        category = names[index % len(names)]
        (low, high), nouns, _ = CATEGORIES[category]
        noun = nouns[(index // len(names)) % len(nouns)]
        adjective = ADJECTIVES[rng.randrange(len(ADJECTIVES))]
        # Log-uniform prices within the category range, rounded like a shop would.
        price = math.exp(rng.uniform(math.log(low), math.log(high)))
        price = round(max(low, math.floor(price) + 0.99 if price > 10 else price), 2)
        products.append(Product(f"PROD{index + 1:05d}", f"{adjective} {noun} {index + 1}", category, price))
    return products
