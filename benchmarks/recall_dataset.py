"""A synthetic long conversation for measuring recall, generated offline from a seed.

One person talks to the bot in a few hundred sessions over about ten months: mostly
chit-chat (weather, food, work, weekends) that reuses the words the questions use
("name", "live", "code", "room", "dog", ...), with facts planted among it:
- personal facts (pets, family, places, jobs, habits) asked about in other words
  ("We picked up the beagle puppy, we're calling him Biscuit" / "What did we name the
  dog?"): embeddings should find these, keywords often cannot;
- exact rare names and numbers ("Zorblax-7", "4471") asked about by that token:
  keywords find these, small embedders often miss them;
- facts that change (moved from Berlin to Lisbon): the question about the present
  ("which city am I based in these days?") has only the newer statement as evidence,
  the question about the past only the older one.

Each question lists the indices of its evidence messages (user messages). The same
templates are used for every seed; slot values (names, numbers, places), the choice of
wording, the positions in the timeline and all filler differ. Tune on one seed and
report on another (benchmarks/recall_quality.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

START = datetime(2024, 1, 8, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DatasetMessage:
    index: int
    session: int
    at: datetime
    role: str  # "user" | "assistant"
    text: str


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    evidence: tuple[int, ...]  # DatasetMessage.index values
    kind: str  # "paraphrase" | "exact" | "current" | "previous"


@dataclass(frozen=True, slots=True)
class Dataset:
    seed: int
    messages: tuple[DatasetMessage, ...]
    questions: tuple[Question, ...]
    now: datetime


# --------------------------------------------------------------------------- slot pools

PET_NAMES = [
    "Biscuit", "Pepper", "Mochi", "Nugget", "Waffles", "Juniper", "Pickles", "Ziggy",
    "Sprocket", "Tofu", "Clementine", "Rufus", "Pistachio", "Marlowe",
]  # fmt: skip
PEOPLE = [
    "Marta", "Ingrid", "Tomasz", "Priya", "Dmitri", "Ayasha", "Lucia", "Kenji", "Farah",
    "Oskar", "Beatriz", "Niamh", "Rafael", "Yusuf", "Greta", "Anselm", "Leila", "Colm",
]  # fmt: skip
CITIES = [
    "Berlin", "Lisbon", "Porto", "Vienna", "Copenhagen", "Montreal", "Edinburgh",
    "Valencia", "Krakow", "Seattle", "Ljubljana", "Gothenburg",
]  # fmt: skip
TOWNS = ["Whitby", "Kinsale", "Hallstatt", "Tobermory", "Bled", "Ericeira", "Portree"]
COUNTRIES = ["Japan", "Peru", "Iceland", "Vietnam", "Morocco", "New Zealand", "Georgia"]
JOBS = [
    "data analyst", "nurse", "carpenter", "product manager", "primary school teacher",
    "sous chef", "paramedic", "UX researcher",
]  # fmt: skip
COMPANIES = ["Quarrowind", "Helixa", "Brightmoor", "Tessellate", "Nimbleroot", "Corvantis"]
CARS = ["old Volvo estate", "red Fiat Panda", "Toyota Prius", "battered VW camper"]
SPORTS = ["tennis", "bouldering", "rowing", "trail running", "fencing", "swimming"]
INSTRUMENTS = ["cello", "banjo", "piano", "trumpet", "ukulele"]
FOODS = ["ramen", "lasagne", "tacos", "curry", "risotto", "dumplings", "falafel", "pho"]
MONTHS = ["March", "April", "May", "June", "August", "September", "October"]
_SYLLABLES = [
    "zor", "blax", "quen", "thor", "vel", "drix", "mar", "kesh", "tul", "vok", "ryn", "pax",
    "zeph", "oru", "gant", "lisk", "brem", "yst", "cor", "vun",
]  # fmt: skip

# --------------------------------------------------------------------------- facts
# Each: statement alternatives, question alternatives (the question avoids the
# statement's content words where it can). Slots: {name} {person} {city} {town} ...

SINGLE_FACTS: list[tuple[list[str], list[str]]] = [
    (
        [
            "We finally picked up the {breed} puppy from the breeder, we're calling him {pet}.",
            "Say hello to {pet}, our new {breed}! He chewed a slipper within an hour.",
        ],
        ["What did we name the dog?", "What is the new puppy called?"],
    ),
    (
        ["Our {catbreed} {pet2} knocked a glass off the table again, what a menace."],
        ["What's the name of my cat?", "Which glass-breaking pet do we have?"],
    ),
    (
        ["I grew up in {town}, tiny place by the sea, everybody knew everybody."],
        ["Where was I raised as a kid?", "Which place did I spend my childhood in?"],
    ),
    (
        ["My sister {person} just got engaged, the ring is ridiculous."],
        ["What is my sibling called?", "Who in my family got engaged?"],
    ),
    (
        ["{person2} lost his first tooth today, my little boy was so proud of the gap."],
        ["What's my son's name?", "How is my child called?"],
    ),
    (
        ["Grandma {person3} turns 90 next week, we're planning a surprise."],
        ["How old is my grandmother going to be?", "What's my gran's name?"],
    ),
    (
        ["My husband {person4} made {food} from scratch tonight, I'm impressed."],
        ["What's my partner's name?", "Who is my spouse?"],
    ),
    (
        ["Note to self: the new garage code is {pin}."],
        ["Which digits open the garage door?", "How do I get into the garage again?"],
    ),
    (
        ["We got room {room} at the hotel, top floor with a view of the harbour."],
        ["Which hotel room were we staying in?", "What number was our room on that trip?"],
    ),
    (
        ["My gym locker this year is number {locker}, writing it down so I remember."],
        ["Where do I keep my stuff at the fitness centre?", "Which locker is mine at the gym?"],
    ),
    (
        ["Booked the flights to {country} for the {month} holiday, so excited!"],
        ["Where am I travelling for my vacation?", "Which country is my big trip to?"],
    ),
    (
        ["I'm allergic to {allergen}, found out the hard way at a wedding once."],
        ["Is there any food I should avoid for health reasons?"],
    ),
    (
        ["I've been learning the {instrument} for three months now, my fingers hurt."],
        ["Which musical instrument am I practising?"],
    ),
    (
        ["My birthday is on the {bday}, same day as my dad's actually."],
        ["When do I turn a year older?", "On what date do I celebrate getting older?"],
    ),
    (
        ["My favourite dish in the world is my mum's {food}, nothing beats it."],
        ["What meal do I love most?"],
    ),
    (
        ["I'm terrified of {fear}, always have been since I was little."],
        ["What is my phobia?", "What scares me the most?"],
    ),
    (
        ["My best friend {person5} is a {job3} in {city3}, we've known each other since school."],
        ["Who is my closest mate?", "What does my oldest friend do for a living?"],
    ),
    (
        ["I drink my coffee with oat milk and no sugar, otherwise I can't stand it."],
        ["How do I take my morning brew?"],
    ),
    (
        ["My license plate is {plate}, just in case I ever forget it at the car park."],
        ["What's the registration of my vehicle?"],
    ),
    (
        ["The wifi password at the cabin is {wifi}, we wrote it on the fridge."],
        ["How do I get online at the holiday cottage?", "What is the cabin wifi?"],
    ),
    (
        ["I'm reading {book} at the moment, the ending better be worth it."],
        ["Which novel am I in the middle of?", "What book am I reading?"],
    ),
    (
        ["Our wedding anniversary is on {anniv}, eleven years this time."],
        ["When did I get married?"],
    ),
    (
        ["My blood type is {blood}, the nurse said it's a useful one to donate."],
        ["Which group is my blood?"],
    ),
    (
        ["{person6} from accounting is my manager now, she's strict but fair."],
        ["Who is my boss?", "Who do I report to at the office?"],
    ),
    (
        ["I take my vitamin D and {med} every morning with breakfast."],
        ["What medication am I on?", "What do I take with breakfast?"],
    ),
    (
        ["We planted {tree} trees along the fence in the back garden."],
        ["What did we grow in the yard?"],
    ),
    (
        ["My shoe size is {shoe}, and nothing ever fits in the shops."],
        ["How big are my feet?"],
    ),
    (
        ["I volunteer at the {charity} every other Saturday morning."],
        ["Where do I help out for free?"],
    ),
]

ALLERGENS = ["peanuts", "shellfish", "kiwi", "sesame"]
FEARS = ["deep water", "spiders", "heights", "thunderstorms"]
BOOKS = ["The Glass Orchard", "A Winter in Mirrow", "Salt and Cinders", "The Long Tideline"]
BLOOD = ["A negative", "O positive", "B positive", "AB negative"]
MEDS = ["iron tablets", "thyroxine", "a low dose of aspirin", "magnesium"]
TREES = ["apple", "cherry", "plum", "hazel"]
CHARITIES = ["food bank", "animal shelter", "community kitchen", "library reading club"]
CAT_BREEDS = ["maine coon", "tabby", "siamese", "ragdoll"]
DOG_BREEDS = ["beagle", "labrador", "corgi", "dachshund", "greyhound"]

CHANGES: list[tuple[list[str], list[str], list[str], list[str]]] = [
    (
        ["My flat in {a} is only ten minutes from the office, I love it."],
        ["The move is done, we're finally settled in {b}! Boxes everywhere though."],
        ["Which city am I based in these days?", "Where is home for me now?"],
        ["Where was my home before the move?"],
    ),
    (
        ["Started my new role as a {ja} at {ca} today, nervous but good."],
        ["Handed in my notice, from Monday I'm a {jb} at {cb}."],
        ["What's my current occupation?", "Who employs me at present?"],
        ["Which company did I leave?"],
    ),
    (
        ["Took the {cara} to the mechanic again, it's held together with tape."],
        ["Sold the old one and bought a {carb}, drives like a dream."],
        ["What am I driving nowadays?"],
        ["Which vehicle did I get rid of?"],
    ),
    (
        ["Signed up for {sa} lessons on Tuesdays, first session was brutal."],
        ["I quit {sa} for good, {sb} is my thing now, three times a week."],
        ["Which sport keeps me busy lately?"],
        ["What activity did I give up?"],
    ),
]

EXACT_STATEMENTS = [
    "Had a long call with {rare} about the budget, they want everything by Friday.",
    "The {rare} prototype finally shipped, the team is exhausted.",
    "Apparently {rare} is the codename for the new warehouse system.",
    "Met {rare} at the conference, brilliant person, we swapped numbers.",
]
EXACT_QUESTIONS = [
    "What did I tell you about {rare}?",
    "Who or what is {rare} again?",
    "Remind me about {rare}.",
]
NUMBER_STATEMENTS = [
    "The storage unit at the depot is number {n}.",
    "My parcel tracking reference is {n}, it's been stuck for days.",
    "The conference badge says I'm attendee {n}, weird number.",
    "Our table at the restaurant tonight is {n}, booked under my name.",
    "The ticket for the broken laptop is case {n} at the help desk.",
]
NUMBER_QUESTIONS = [
    "What was {n} about?",
    "Remind me what the number {n} refers to.",
    "Where did {n} come up?",
]

# --------------------------------------------------------------------------- filler

USER_FILLER = [
    "Rainy again today, I didn't even bother going for a walk.",
    "Work was long, three meetings back to back and a code review I didn't finish.",
    "Made {food} for dinner, turned out better than last time.",
    "Watched a documentary about octopuses, they're way smarter than I thought.",
    "My neighbour's dog barked all night, I barely slept.",
    "Had coffee with {person} from work, she's moving to a new team.",
    "Thinking about repainting the living room, maybe a soft green.",
    "The train was {n2} minutes late this morning, classic.",
    "Went to a live gig on Saturday, my ears are still ringing.",
    "I can't decide what to name my new plant, any ideas?",
    "My laptop keeps freezing whenever I open more than {n2} tabs.",
    "Ran {n3} km this morning, legs are jelly.",
    "Spent the whole evening sorting out taxes, what a joy.",
    "Found a great little bakery near the station, the croissants are unreal.",
    "{person} sent me a video of her cat falling off the sofa, I laughed so hard.",
    "Our team lunch was at the new {food} place, it was alright.",
    "The city is so busy with tourists this week.",
    "I should really call my parents more often.",
    "Cleaned the whole flat today, feels good.",
    "Is it normal to feel tired all the time in winter?",
    "My phone screen cracked, of course right after the warranty ran out.",
    "Booked a dentist appointment for next {weekday}, not looking forward to it.",
    "We played board games with {person} and {person}, I lost every round.",
    "Tried a new recipe with lentils, honestly not bad.",
    "The heating in the office is broken again, everyone is wearing coats.",
    "Got stuck in traffic for an hour, listened to a whole podcast.",
    "I keep forgetting to water the plants, two of them look sad.",
    "Thinking of starting a journal, do you think it helps?",
    "The flight simulator game my nephew showed me is surprisingly hard.",
    "Our building's lift has been out of order for {n2} days.",
    "The weather app said sunny and it poured all afternoon.",
    "I've been sleeping badly, maybe too much screen time.",
    "Birthday party at {person}'s place tonight, need to buy a present.",
    "I wonder where people live when they work on oil rigs.",
    "Does anybody actually remember their passwords these days?",
    "Had a nice long chat with my sister on the phone.",
    "Watched the football, what a terrible match.",
    "Went to the market and bought way too many vegetables.",
    "My manager wants a report by {weekday}, I haven't started.",
    "The kids next door are practising the drums again.",
    "Saw a fox in the garden this morning, so cute.",
    "I need new running shoes, these have {n3}00 km on them.",
    "Room temperature is {n3} degrees and I'm still cold.",
    "Visited a museum about the history of the city, pretty interesting.",
    "Might get a new job someday, but not right now.",
    "The hotel we stayed in years ago just closed down, sad.",
    "I spilled coffee on my keyboard, some keys stick now.",
    "Our car needs new tyres before winter.",
    "Number of emails in my inbox: {n2}00. I give up.",
    "Went swimming with {person}, the pool was freezing.",
    "My cousin's {breed} chewed through a phone cable, typical dog.",
    "{person} is thinking of moving to {city}, the rents are crazy there.",
    "The hotel near the office has a rooftop bar, we should go sometime.",
    "{person}'s son is learning the violin, the whole street can hear it.",
    "Someone at work forgot the code for the bike shed again.",
    "I read that {country} is beautiful in spring.",
    "My colleague just adopted a kitten, she sends photos every hour.",
    "My aunt is allergic to cats but keeps visiting people who have them.",
    "Half the office drives electric cars now.",
    "{person} got engaged last year and still hasn't set a date.",
    "Our old flat had the worst landlord, glad that's over.",
    "I should book a holiday, I haven't been away in ages.",
    "Every week there's a new password rule at work.",
    "My dad keeps asking when I'll visit home.",
    "Joined a book club, the first pick was way too long.",
    "The gym was packed tonight, waited ages for a bench.",
    "Grandparents in the park were feeding the pigeons, sweet scene.",
    "Got a reminder that my passport expires in {n3} months.",
    "The kids at {person}'s place named their hamster after a footballer.",
    "Reading the news about {city} this morning, crazy stuff.",
]
USER_TAILS = [
    "",
    "",
    "",
    " Anyway.",
    " How was your day?",
    " Not much else going on.",
    " {person} says hi.",
    " It's been a week.",
    " Long day.",
    " Honestly.",
    " Around {n2} people were there.",
    " Off to bed soon.",
    " Such is life.",
]
ASSISTANT_FILLER = [
    "That sounds exhausting, I hope you get some rest tonight.",
    "Ha, that's a classic. How did the rest of the day go?",
    "Oh nice, what did you like most about it?",
    "That's frustrating. Is there anything that might make it easier?",
    "Sounds lovely! Do you do that often?",
    "I get that. Sometimes a small change of routine helps.",
    "That's a good question. What do you think yourself?",
    "Fair enough! Let me know how it turns out.",
    "Wow, that's a lot. Be kind to yourself.",
    "Good for you! That takes some discipline.",
    "Hmm, maybe try writing it down somewhere safe?",
    "That must have been fun. Who else was there?",
    "I'd love to hear more about that sometime.",
    "Sounds like a busy week. Anything you're looking forward to?",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def fill(self, template: str) -> str:
        r = self.rng
        return template.format(
            food=r.choice(FOODS),
            person=r.choice(PEOPLE),
            breed=r.choice(DOG_BREEDS),
            city=r.choice(CITIES),
            country=r.choice(COUNTRIES),
            n2=r.randint(2, 60),
            n3=r.randint(3, 24),
            weekday=r.choice(WEEKDAYS),
        )

    def rare_word(self, used: set[str]) -> str:
        while True:
            word = "".join(self.rng.sample(_SYLLABLES, 2)).capitalize()
            if self.rng.random() < 0.4:
                word += f"-{self.rng.randint(2, 99)}"
            if word not in used:
                used.add(word)
                return word

    def number(self, used: set[str]) -> str:
        while True:
            value = str(self.rng.randint(1000, 9999))
            if value not in used:
                used.add(value)
                return value


def generate(seed: int, *, sessions: int = 320, exact: int = 14, numbers: int = 10) -> Dataset:
    """The data set of `seed`: same seed, same data set, on any machine."""
    b = _Builder(seed)
    r = b.rng
    used: set[str] = set()
    people = r.sample(PEOPLE, 8)
    cities = r.sample(CITIES, 4)
    companies = r.sample(COMPANIES, 2)
    jobs = r.sample(JOBS, 3)
    sports = r.sample(SPORTS, 2)
    cars = r.sample(CARS, 2)
    slots = {
        "breed": r.choice(DOG_BREEDS),
        "catbreed": r.choice(CAT_BREEDS),
        "pet": PET_NAMES[r.randrange(7)],
        "pet2": PET_NAMES[7 + r.randrange(7)],
        "town": r.choice(TOWNS),
        "person": people[0],
        "person2": people[1],
        "person3": people[2],
        "person4": people[3],
        "person5": people[4],
        "person6": people[5],
        "blood": r.choice(BLOOD),
        "med": r.choice(MEDS),
        "tree": r.choice(TREES),
        "shoe": str(r.randint(36, 46)),
        "charity": r.choice(CHARITIES),
        "food": r.choice(FOODS),
        "pin": b.number(used),
        "room": str(r.randint(201, 989)),
        "locker": str(r.randint(10, 399)),
        "country": r.choice(COUNTRIES),
        "month": r.choice(MONTHS),
        "allergen": r.choice(ALLERGENS),
        "instrument": r.choice(INSTRUMENTS),
        "bday": f"{r.randint(1, 28)}th of {r.choice(MONTHS)}",
        "anniv": f"{r.randint(1, 28)}th of {r.choice(MONTHS)}",
        "fear": r.choice(FEARS),
        "job3": jobs[2],
        "city3": cities[2],
        "plate": f"{r.choice('BKMPT')}{r.choice('AXZ')}-{r.randint(100, 999)}-{r.choice('QRW')}",
        "wifi": b.rare_word(used).lower() + str(r.randint(10, 99)),
        "book": r.choice(BOOKS),
        "a": cities[0],
        "b": cities[1],
        "ja": jobs[0],
        "jb": jobs[1],
        "ca": companies[0],
        "cb": companies[1],
        "cara": cars[0],
        "carb": cars[1],
        "sa": sports[0],
        "sb": sports[1],
    }
    # Never in the last sessions: those would be in the prompt's recent window anyway.
    last = sessions - 4
    plan: list[tuple[int, str, list[tuple[str, str]]]] = []  # (session, statement, qs)
    for statements, asked in SINGLE_FACTS:
        qs = [(q, "paraphrase") for q in asked]
        plan.append((r.randrange(last), r.choice(statements).format(**slots), qs))
    change_plan: list[tuple[int, str, int, str, list[tuple[str, str]], list[tuple[str, str]]]]
    change_plan = []
    for old, new, now_qs, before_qs in CHANGES:
        change_plan.append(
            (
                r.randrange(int(last * 0.4)),
                r.choice(old).format(**slots),
                r.randrange(int(last * 0.6), last),
                r.choice(new).format(**slots),
                [(q, "current") for q in now_qs],
                [(q, "previous") for q in before_qs],
            )
        )
    exact_plan: list[tuple[list[int], list[str], str]] = []
    for _ in range(exact):
        word = b.rare_word(used)
        mentions = 1 if r.random() < 0.7 else 2
        sessions_of = sorted(r.sample(range(last), mentions))
        texts = [r.choice(EXACT_STATEMENTS).format(rare=word) for _ in sessions_of]
        exact_plan.append((sessions_of, texts, r.choice(EXACT_QUESTIONS).format(rare=word)))
    for _ in range(numbers):
        n = b.number(used)
        exact_plan.append(
            (
                [r.randrange(last)],
                [r.choice(NUMBER_STATEMENTS).format(n=n)],
                r.choice(NUMBER_QUESTIONS).format(n=n),
            )
        )

    # Statements to place: (session, key, text); key ties them to their questions.
    placed: list[tuple[int, str, str]] = []
    for i, (s, text, _) in enumerate(plan):
        placed.append((s, f"single:{i}", text))
    for i, (s_old, t_old, s_new, t_new, _, _) in enumerate(change_plan):
        placed.append((s_old, f"old:{i}", t_old))
        placed.append((s_new, f"new:{i}", t_new))
    for i, (ss, texts, _) in enumerate(exact_plan):
        for j, (s, text) in enumerate(zip(ss, texts, strict=True)):
            placed.append((s, f"exact:{i}:{j}", text))
    by_session: dict[int, list[tuple[str, str]]] = {}
    for s, key, text in placed:
        by_session.setdefault(s, []).append((key, text))

    messages: list[DatasetMessage] = []
    index_of: dict[str, int] = {}
    day = START
    for session in range(sessions):
        day += timedelta(days=r.choice([0, 1, 1, 1, 2]))
        at = day.replace(hour=r.randint(7, 22), minute=r.randint(0, 59))
        turns: list[tuple[str | None, str]] = [
            (None, b.fill(r.choice(USER_FILLER) + r.choice(USER_TAILS)))
            for _ in range(r.randint(3, 8))
        ]
        for planted_key, text in by_session.get(session, []):
            turns.insert(r.randint(0, len(turns)), (planted_key, text))
        for turn_key, text in turns:
            if turn_key is not None:
                index_of[turn_key] = len(messages)
            messages.append(DatasetMessage(len(messages), session, at, "user", text))
            at += timedelta(seconds=r.randint(20, 240))
            messages.append(
                DatasetMessage(len(messages), session, at, "assistant", r.choice(ASSISTANT_FILLER))
            )
            at += timedelta(seconds=r.randint(30, 600))

    questions: list[Question] = []
    for i, (_, _, qs) in enumerate(plan):
        questions += [Question(q, (index_of[f"single:{i}"],), kind) for q, kind in qs]
    for i, (_, _, _, _, new_asked, old_asked) in enumerate(change_plan):
        questions += [Question(q, (index_of[f"new:{i}"],), kind) for q, kind in new_asked]
        questions += [Question(q, (index_of[f"old:{i}"],), kind) for q, kind in old_asked]
    for i, (ss, _, q) in enumerate(exact_plan):
        evidence = tuple(index_of[f"exact:{i}:{j}"] for j in range(len(ss)))
        questions.append(Question(q, evidence, "exact"))
    now = messages[-1].at + timedelta(hours=1)
    return Dataset(seed, tuple(messages), tuple(questions), now)


if __name__ == "__main__":
    data = generate(1)
    kinds: dict[str, int] = {}
    for question in data.questions:
        kinds[question.kind] = kinds.get(question.kind, 0) + 1
    print(f"{len(data.messages)} messages, {len(data.questions)} questions {kinds}")
    print(f"from {data.messages[0].at:%Y-%m-%d} to {data.messages[-1].at:%Y-%m-%d}")
    for question in data.questions[::9]:
        print(question.kind, "|", question.text, "->", data.messages[question.evidence[0]].text)
