"""A second recall data set, made another way than benchmarks/recall_dataset.py.

That one plants one-line statements among one-line filler and asks about them in the
second person. People talk differently over months, so this one is built from
*exchanges*: the person (a display name, e.g. "Maya") and the assistant (a name of its
own) talk in sessions that come in bursts and gaps over about fourteen months, and
what matters is spread over turns and sessions:

- `single`: a fact told over an exchange ("We adopted a dog!" / "What's the name?" /
  "Biscuit, a beagle mix"): the answer turn often lacks the question's topic word,
  the setup turn lacks the answer; both are evidence. Asked in the third person
  ("What is the name of Maya's dog?") or, sometimes, the first.
- `assistant`: something the assistant said (a recommendation): the evidence is its turn.
- `when`: when an event happened ("When did Maya adopt Biscuit?"): answered by the date
  of the turn that tells it (the prompt shows dates).
- `dated`: a topic that recurs all year (her knee, the flat, the allotment) asked about
  in a period ("What did Maya say about her knee in March 2025?", "... last spring"):
  only the mentions in that period are evidence; the others are distractors.
- `multihop`: the evidence lies in two or three sessions (a bridge: "What does the
  friend Maya went climbing with do for a living?"; a list: "Which cities did Maya
  travel to?"). Reported as all-evidence@10 as well.
- `none`: questions with no answer in the conversation, in the same vocabulary
  ("What is Maya's horse called?"): no evidence; used to see whether recall's scores
  stay low when nothing fits.

Facts as the memory job writes them (short, third person without subject: "Has a
beagle mix named Biscuit") are planted for about half of the single facts, plus
distractor facts on the same themes. A question whose facts are found counts as found.

Filler is composed from fragments (daily life, in the questions' vocabulary: names,
dog, sister, trip, work, knee), so few turns repeat word for word. Seeded and offline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from benchmarks.recall_dataset import DatasetMessage as Turn

START = datetime(2025, 1, 6, tzinfo=UTC)
SESSIONS = 190


@dataclass(frozen=True, slots=True)
class PlantedFact:
    index: int
    text: str
    at: datetime
    importance: int


@dataclass(frozen=True, slots=True)
class DialogueQuestion:
    text: str
    evidence: tuple[int, ...]  # Turn (DatasetMessage) index values
    facts: tuple[int, ...]  # PlantedFact.index values that answer it too
    kind: str  # single | assistant | when | dated | multihop | none


@dataclass(frozen=True, slots=True)
class Dialogues:
    seed: int
    person: str
    assistant: str
    turns: tuple[Turn, ...]
    facts: tuple[PlantedFact, ...]
    questions: tuple[DialogueQuestion, ...]
    now: datetime


PERSONS = ["Maya", "Aoife", "Elena", "Noor", "Greta", "Leila", "Bea", "Sunniva"]
ASSISTANTS = ["Wren", "Juno", "Sol"]
FRIENDS = [
    "Ines", "Tomasz", "Priya", "Kofi", "Hana", "Mateo", "Sigrid", "Dev", "Lotte",
    "Emeka", "Rosa", "Yuki", "Callum", "Amara", "Felix", "Zainab",
]  # fmt: skip
PETS = ["Biscuit", "Miso", "Pretzel", "Olive", "Bramble", "Noodle", "Pilot", "Tansy"]
BREEDS = ["beagle", "greyhound", "spaniel", "border collie", "terrier"]
CITIES = ["Lisbon", "Krakow", "Seville", "Tallinn", "Bologna", "Ghent", "Porto", "Bergen"]
COMPANIES = ["Lumenfold", "Carrowby", "Vestrel", "Ondara", "Pikewise"]
JOBS = ["paramedic", "surveyor", "sound engineer", "pharmacist", "tram driver", "baker"]
FILMS = ["The Quiet Harbour", "Paper Moons", "North of Ellery", "A Field in Winter"]
BOOKS = ["The Salt Road", "Lanterns at Sea", "The Orchard Keeper's Daughter", "Glasswing"]
DISHES = ["shakshuka", "pierogi", "laksa", "ribollita", "jollof rice", "bibimbap"]
SPORTS = ["bouldering", "rowing", "fencing", "salsa", "pottery"]
ACTIVITIES = ["climbing", "kayaking", "hiking", "cycling"]
PLACES = ["the Peak District", "Lake Bled", "the Dolomites", "Snowdonia", "the Algarve"]
MONTH_NAMES = [
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
]  # fmt: skip
SEASONS = {"winter": (12, 1, 2), "spring": (3, 4, 5), "summer": (6, 7, 8), "autumn": (9, 10, 11)}

# (setup said by the person, assistant follow-up, answer by the person,
#  questions (third person: {me}; "I" forms are first person), fact or "", event for "when")
EXCHANGES: list[tuple[str, str, str, list[str], str, str]] = [
    ("We did it, we adopted a dog from the shelter this morning!",
     "Oh that's wonderful news! Tell me everything, what's the little one called?",
     "{pet}. A {breed} mix, about two years old, very shy so far.",
     ["What is the name of {me}'s dog?", "What breed is {me}'s dog?"],
     "Has a {breed} mix named {pet}, adopted from a shelter", "adopt {pet}"),
    ("My little sister called, big news in the family.",
     "Good news I hope? What happened?",
     "{sis} is getting married! To a guy she met at a pottery class, can you believe it.",
     ["Who in {me}'s family is getting married?", "How did {me}'s sister meet her fiance?"],
     "Younger sister {sis} is engaged; met her fiance at a pottery class",
     "get the news of {sis}'s engagement"),
    ("Signed the contract today. New job, new start.",
     "Congratulations! Where will you be working?",
     "At {company}, as a {job}. First day is in two weeks.",
     ["Where does {me} work now?", "What was {me}'s new job?"],
     "Works at {company} as a {job}", "sign the contract at {company}"),
    ("Can you recommend a film for tonight? Something gentle.",
     "You might like {film}. It's slow, but the ending stays with you.",
     "Thanks, I'll give it a go with popcorn.",
     ["What film did {bot} recommend to {me}?"],
     "", ""),
    ("I finally found out what was wrong with me all spring.",
     "Oh? What did the doctor say?",
     "Turns out I'm allergic to {allergen}. No more of that in anything.",
     ["What is {me} allergic to?", "What health problem did {me} find out about?"],
     "Allergic to {allergen}", "find out about the {allergen} allergy"),
    ("Started a new hobby to get off screens in the evenings.",
     "Nice, what did you pick?",
     "{sport}. Tuesday and Thursday nights at the community centre.",
     ["What hobby did {me} take up?", "What does {me} do on Tuesday evenings?"],
     "Does {sport} on Tuesday and Thursday nights", "start {sport}"),
    ("My grandad turned 90 yesterday, we had the whole family round.",
     "What a milestone! How did he celebrate?",
     "He insisted on {dish} and a single candle. Then he beat everyone at cards.",
     ["What did {me}'s grandfather eat on his birthday?", "How old did {me}'s grandad turn?"],
     "Grandfather turned 90", "celebrate grandad's 90th birthday"),
    ("I bought a car. Well, half a car, it's very old.",
     "Ha! What kind of car is it?",
     "A {car}, older than me, but it starts every time. Mostly.",
     ["What car does {me} drive?"],
     "Drives an old {car}", "buy the car"),
    ("Any book you'd suggest for the train? I finished mine.",
     "Try {book}, it's short chapters, perfect for commuting.",
     "Ordered it, thanks.",
     ["Which book did {bot} suggest to {me} for the train?"],
     "", ""),
    ("Our neighbour gave us the key to her garden while she's away.",
     "That's kind of her. Who is she?",
     "{neighbour}, the retired {job2} from number 12. She grows the best tomatoes.",
     ["What did {me}'s neighbour do before she retired?", "Who is {me}'s neighbour?"],
     "Neighbour {neighbour} is a retired {job2}", ""),
    ("I made a decision about the flat.",
     "Oh, what did you decide?",
     "We're painting the whole place {colour}. Even the ceiling. Don't judge.",
     ["What colour is {me} painting the flat?"],
     "Painting the flat {colour}", "decide to paint the flat"),
    ("Had the best meal of my life last night.",
     "Ooh, where was it?",
     "A tiny place called {restaurant} near the station. The {dish2} was unreal.",
     ["Which restaurant did {me} love?", "What did I eat at the best meal of my life?"],
     "Loves the restaurant {restaurant}", "have the best meal of her life"),
]  # fmt: skip
CARS = ["Saab 900", "Renault 4", "Volvo 240", "Citroen 2CV"]
ALLERGENS = ["walnuts", "celery", "mustard", "sesame"]
COLOURS = ["sage green", "terracotta", "deep blue", "mustard yellow"]
RESTAURANTS = ["Casa Lume", "The Little Anchor", "Osteria Rovo", "Kettle and Fig"]

# Topics that recur all year: each mention says something different about it.
RECURRING: dict[str, tuple[str, list[str]]] = {
    "knee": (
        "her knee",
        [
            "My knee is acting up again after the run, might need to rest it.",
            "Physio says my knee needs another six weeks of exercises.",
            "Knee feels much better, did five km without pain!",
            "Booked a scan for my knee, the doctor wants to rule out a tear.",
            "The scan was clear, my knee is just overworked. Relief.",
            "Knee is stiff in this cold weather, walking like an old man.",
            "Back to running, the knee brace is doing wonders.",
        ],
    ),
    "allotment": (
        "the allotment",
        [
            "Spent the morning at the allotment digging out the weeds.",
            "The allotment finally gave us courgettes, far too many of them.",
            "Slugs ate all the lettuce at the allotment, I'm furious.",
            "Planted garlic at the allotment for next year.",
            "Our allotment got a prize for the pumpkins, ridiculous but I'll take it.",
            "The allotment shed roof leaks, need to fix it before winter.",
        ],
    ),
    "flat": (
        "the flat",
        [
            "The landlord says the boiler in the flat will be replaced next month.",
            "The boiler is fixed, the flat is warm for the first time in weeks.",
            "Found damp behind the wardrobe in the flat, not great.",
            "Rent on the flat is going up again in the spring.",
            "We rearranged the whole flat, the living room feels twice as big.",
            "Thinking about buying a flat instead of renting, the numbers are scary.",
        ],
    ),
    "choir": (
        "the choir",
        [
            "Joined the community choir, I'm a terrible alto but nobody minds.",
            "Choir concert is in three weeks and I still don't know the words.",
            "The choir concert went well, my mum cried.",
            "Our choir director is leaving, everyone is upset.",
            "New choir director is strict, we sing scales for an hour now.",
        ],
    ),
}

NO_ANSWER = [
    "What is the name of {me}'s horse?",
    "When did {me} go skiing in Canada?",
    "Which instrument does {me}'s brother play?",
    "What did {me} say about her divorce?",
    "What is {me}'s daughter's name?",
    "Which marathon did {me} run last year?",
    "What did {bot} recommend to {me} for her wedding speech?",
    "What colour is {me}'s motorbike?",
    "Where did {me} study medicine?",
    "What is the name of {me}'s parrot?",
]

FILLER_OPEN = [
    "Long day at work,", "Quiet weekend,", "Rainy again,", "Busy week,", "Slept badly,",
    "Lovely morning,", "Train was late again,", "Finally some sun,", "Back from the shops,",
    "Feeling a bit flat today,",
]  # fmt: skip
FILLER_BODY = [
    "had lunch with {friend} and we talked about nothing for two hours.",
    "my sister sent me photos of her new kitchen.",
    "the dog next door barked at the postman for twenty minutes.",
    "spent the evening on a puzzle with {friend}.",
    "work wants the report by Friday, of course.",
    "I keep forgetting the name of that podcast {friend} told me about.",
    "made {dish} and it was fine, not great.",
    "watched half a film and fell asleep on the sofa.",
    "thinking about a trip somewhere warm, maybe in the autumn.",
    "my phone died in the middle of a call with mum.",
    "the office coffee machine is broken again.",
    "went for a walk by the canal, saw a heron.",
    "{friend} says hi, by the way.",
    "did the laundry and called it a day.",
    "my manager said something nice about my work, shocking.",
    "tried a new route to work, got lost.",
    "the neighbours are having a party, I can hear every word.",
    "booked a haircut, first one in months.",
    "my cousin visited with her new baby, so tiny.",
    "cleaned the fridge, found things I won't describe.",
]  # fmt: skip
FILLER_TAIL = ["", "", " Anyway, how are you?", " Such is life.", " What would you do?", " Ha."]
ASSISTANT_REPLIES = [
    "That sounds like a lot. Did you get any time for yourself?",
    "Ha, I love that. What happened next?",
    "I hope tomorrow is kinder to you.",
    "That's a nice way to spend the day.",
    "Oh no. Is there anything that would help?",
    "Sounds good to me! Let me know how it goes.",
    "I remember you mentioning that before, how is it going now?",
    "Fair enough. Some days are just like that.",
]


def _month_label(at: datetime) -> str:
    return f"{MONTH_NAMES[at.month - 1]} {at.year}"


class _Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed * 7919 + 17)

    def filler_user(self, friends: list[str]) -> str:
        r = self.r
        body = r.choice(FILLER_BODY).format(friend=r.choice(friends), dish=r.choice(DISHES))
        return f"{r.choice(FILLER_OPEN)} {body}{r.choice(FILLER_TAIL)}"


def generate(seed: int, *, sessions: int = SESSIONS) -> Dialogues:
    """The data set of `seed`: same seed, same data set, on any machine."""
    g = _Gen(seed)
    r = g.r
    me = r.choice(PERSONS)
    bot = r.choice(ASSISTANTS)
    friends = r.sample(FRIENDS, 8)
    slots = {
        "me": me, "bot": bot, "pet": r.choice(PETS), "breed": r.choice(BREEDS),
        "sis": friends[0], "company": r.choice(COMPANIES), "job": r.choice(JOBS),
        "job2": r.choice(JOBS), "film": r.choice(FILMS), "allergen": r.choice(ALLERGENS),
        "sport": r.choice(SPORTS), "dish": r.choice(DISHES), "dish2": r.choice(DISHES),
        "car": r.choice(CARS), "book": r.choice(BOOKS), "neighbour": friends[1],
        "colour": r.choice(COLOURS), "restaurant": r.choice(RESTAURANTS),
    }  # fmt: skip
    last = sessions - 3  # the newest sessions are in the recent window anyway

    # Session dates: bursts and gaps.
    days: list[datetime] = []
    day = START
    for _ in range(sessions):
        day += timedelta(days=r.choice([0, 1, 1, 2, 2, 3, 4, 7]))
        days.append(day.replace(hour=r.randint(7, 22), minute=r.randint(0, 59)))

    # What each session holds besides filler: lists of (key, [(role, text)]).
    plan: dict[int, list[tuple[str, list[tuple[str, str]]]]] = {}

    def put(session: int, key: str, turns: list[tuple[str, str]]) -> None:
        plan.setdefault(session, []).append((key, turns))

    for i, (setup, follow, answer, _, _, _) in enumerate(EXCHANGES):
        exchange = [("user", setup), ("assistant", follow), ("user", answer)]
        put(r.randrange(last), f"ex:{i}", [(role, t.format(**slots)) for role, t in exchange])
    recurring_at: dict[str, list[int]] = {}
    for topic, (_, lines) in RECURRING.items():
        chosen = sorted(r.sample(range(last), len(lines)))
        recurring_at[topic] = chosen
        for j, (where, line) in enumerate(zip(chosen, r.sample(lines, len(lines)), strict=True)):
            put(where, f"rec:{topic}:{j}", [("user", line)])
    # Multi-hop: a bridge (activity with a friend / the friend's job) and a list (trips).
    buddy, buddy_job, activity, place = (
        friends[2],
        r.choice(JOBS),
        r.choice(ACTIVITIES),
        r.choice(PLACES),
    )
    s1, s2 = sorted(r.sample(range(last), 2))
    put(
        s1,
        "hop:bridge:0",
        [("user", f"Went {activity} in {place} with {buddy} at the weekend, we got soaked.")],
    )
    bridge = f"{buddy} had a rough week, being a {buddy_job} is no joke."
    put(s2, "hop:bridge:1", [("user", bridge)])
    trip_cities = r.sample(CITIES, 3)
    for j, where in enumerate(sorted(r.sample(range(last), 3))):
        put(
            where,
            f"hop:trip:{j}",
            [("user", f"Just got back from {trip_cities[j]}, the food alone was worth the trip.")],
        )
    old_city, new_city = r.sample([c for c in CITIES if c not in trip_cities], 2)
    s1, s2 = sorted(r.sample(range(last), 2))
    put(
        s1,
        "hop:move:0",
        [("user", f"Our lease in {old_city} ends soon, we're looking for somewhere else.")],
    )
    put(
        s2,
        "hop:move:1",
        [("user", f"The move is done, first night in {new_city}! Boxes everywhere.")],
    )

    turns: list[Turn] = []
    index_of: dict[str, list[int]] = {}
    for session in range(sessions):
        at = days[session]
        blocks: list[tuple[str | None, list[tuple[str, str]]]] = [
            (None, [("user", g.filler_user(friends)), ("assistant", r.choice(ASSISTANT_REPLIES))])
            for _ in range(r.randint(3, 7))
        ]
        for planted_key, planted in plan.get(session, []):
            blocks.insert(r.randint(0, len(blocks)), (planted_key, planted))
        for block_key, block in blocks:
            for role, text in block:
                if block_key is not None:
                    index_of.setdefault(block_key, []).append(len(turns))
                turns.append(Turn(len(turns), session, at, role, text[:1].upper() + text[1:]))
                at += timedelta(seconds=r.randint(20, 300))
            if block_key is not None and block[-1][0] == "user":  # the assistant answers
                turns.append(
                    Turn(len(turns), session, at, "assistant", r.choice(ASSISTANT_REPLIES))
                )
                at += timedelta(seconds=r.randint(20, 300))
    now = turns[-1].at + timedelta(hours=2)

    facts: list[PlantedFact] = []
    questions: list[DialogueQuestion] = []

    def ask(text: str, evidence: list[int], kind: str, fact_ids: tuple[int, ...] = ()) -> None:
        questions.append(DialogueQuestion(text.format(**slots), tuple(evidence), fact_ids, kind))

    for i, (_, _, _, asked, fact, event) in enumerate(EXCHANGES):
        setup_at, follow_at, answer_at = index_of[f"ex:{i}"][:3]
        fact_ids: tuple[int, ...] = ()
        if fact and r.random() < 0.5:
            told = turns[answer_at].at + timedelta(hours=r.randint(1, 30))
            facts.append(PlantedFact(len(facts), fact.format(**slots), told, r.randint(4, 8)))
            fact_ids = (len(facts) - 1,)
        kind = "single" if fact or event else "assistant"
        for q in asked:
            evidence = [follow_at] if kind == "assistant" else [setup_at, answer_at]
            ask(q, evidence, kind, fact_ids)
        if event:
            ask(f"When did {{me}} {event}?", [setup_at], "when")
    for topic, (phrase, _) in RECURRING.items():
        mentions = [index_of[f"rec:{topic}:{j}"][0] for j in range(len(recurring_at[topic]))]
        target = turns[r.choice(mentions)].at
        month = [
            m
            for m in mentions
            if (turns[m].at.year, turns[m].at.month) == (target.year, target.month)
        ]
        ask(f"What did {{me}} say about {phrase} in {_month_label(target)}?", month, "dated")
        season = next(n for n, months in SEASONS.items() if target.month in months)
        in_season = [
            m
            for m in mentions
            if turns[m].at.month in SEASONS[season] and abs((turns[m].at - target).days) < 120
        ]
        first = "my" if phrase.startswith("her ") else "the"
        noun = phrase.split(" ", 1)[1]
        ask(
            f"How was {first} {noun} doing in the {season} of {target.year}? What did I tell you?",
            in_season,
            "dated",
        )
    ask(f"What does the friend {{me}} went {activity} with do for a living?",
        [index_of["hop:bridge:0"][0], index_of["hop:bridge:1"][0]], "multihop")  # fmt: skip
    ask("Which cities has {me} travelled to?",
        [index_of[f"hop:trip:{j}"][0] for j in range(3)], "multihop")  # fmt: skip
    ask(f"Where did {{me}} live before moving to {new_city}, and why did she move?",
        [index_of["hop:move:0"][0], index_of["hop:move:1"][0]], "multihop")  # fmt: skip
    ask(f"Who did {{me}} go {activity} with, and where?",
        [index_of["hop:bridge:0"][0]], "single")  # fmt: skip
    for q in r.sample(NO_ANSWER, 6):
        ask(q, [], "none")

    # Distractor facts on the same themes, as the memory job would also have written.
    for text in [
        f"Neighbour's dog is a {r.choice(BREEDS)} that barks at the postman",
        f"Best friend {friends[3]} lives in {r.choice(CITIES)}",
        "Prefers tea to coffee in the afternoon",
        f"Cousin {friends[4]} had a baby this year",
        f"Manager at work is called {friends[5]}",
        "Takes the train to work most days",
        f"Likes cooking {r.choice(DISHES)} at the weekend",
        "Sister loves pottery",
        "Knee injury from running, sees a physio",
        "Rents a flat with a temperamental boiler",
        "Sings alto in a community choir",
        "Has an allotment",
        f"Went on holiday to {r.choice(CITIES)} as a child",
        "Watches films on Friday nights",
    ]:
        facts.append(
            PlantedFact(len(facts), text, turns[r.randrange(len(turns))].at, r.randint(3, 7))
        )
    return Dialogues(seed, me, bot, tuple(turns), tuple(facts), tuple(questions), now)


if __name__ == "__main__":
    data = generate(1)
    kinds: dict[str, int] = {}
    for question in data.questions:
        kinds[question.kind] = kinds.get(question.kind, 0) + 1
    print(f"{data.person} and {data.assistant}: {len(data.turns)} turns, {len(data.facts)} facts,")
    print(f"{len(data.questions)} questions {kinds}")
    print(f"from {data.turns[0].at:%Y-%m-%d} to {data.turns[-1].at:%Y-%m-%d}")
    for question in data.questions:
        print(
            question.kind, "|", question.text, "->", [data.turns[i].text for i in question.evidence]
        )
