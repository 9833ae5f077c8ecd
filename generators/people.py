"""Names of the simulated people, shared by the generators so one sample world has one cast.

The usage generator's developers and the subscriptions generator's customers are drawn from the same
first and last names (Brazilian names, with a few from elsewhere, as the platform's users are).
"""

__all__ = ["FIRST", "LAST"]

FIRST = (
    "Ana",
    "Bruno",
    "Carla",
    "Diego",
    "Elisa",
    "Felipe",
    "Gabriela",
    "Heitor",
    "Isabela",
    "João",
    "Karina",
    "Lucas",
    "Marina",
    "Nicolas",
    "Olivia",
    "Pedro",
    "Rafaela",
    "Samuel",
    "Tatiana",
    "Vitor",
    "Wesley",
    "Yasmin",
    "Priya",
    "Chen",
    "Amara",
    "Lars",
    "Sofia",
    "Mateo",
    "Aiko",
    "Omar",
)
LAST = (
    "Souza",
    "Oliveira",
    "Santos",
    "Lima",
    "Pereira",
    "Costa",
    "Almeida",
    "Ribeiro",
    "Carvalho",
    "Gomes",
    "Martins",
    "Rocha",
    "Barbosa",
    "Araújo",
    "Fernandes",
    "Nakamura",
    "Okafor",
    "Lindqvist",
    "Haddad",
    "Kim",
)
