"""The corpus schema (``schema/spec.md`` of the Movement Graph) as data.

One table says, for every entity type, which frontmatter fields it has, what
kind of value each holds and which ontology property it becomes; a second says
which relations have an inverse and which are symmetric; a third holds the
canonical-direction rules. The mapper, the integrity checks, the shapes test and
the web pages all read these tables, so the schema is written down once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Kind(Enum):
    """What a frontmatter value is, which decides how it becomes RDF."""

    TEXT = "text"            # prose or a short string -> xsd:string literal
    DATE = "date"            # YYYY-MM-DD | YYYY-MM | YYYY -> xsd:date | gYearMonth | gYear
    DATE_OR_ONGOING = "date-or-ongoing"  # campaign end_date
    URL = "url"              # valid http(s) -> IRI, else literal + warning
    URL_OR_CONTACT = "url-or-contact"    # local group website_or_contact
    REF = "ref"              # one entity id -> entity IRI
    REFS = "refs"            # list of entity ids
    REF_OR_TEXT = "ref-or-text"  # publication publisher: an entity id or a plain name
    VOCAB = "vocab"          # closed vocabulary -> concept IRI
    TAGS = "tags"            # list of tags -> SKOS concepts
    SOURCES = "sources"      # list of {url, last_checked, note}
    AFFILIATIONS = "affiliations"  # list of {org, role, period}
    PROFILES = "profiles"    # list of {platform, url}
    EFFECTS = "effects"      # list of {description, type, source, attribution_confidence}


@dataclass(frozen=True)
class Field:
    name: str                 # the YAML key
    prop: str                 # local name of the ontology property (mg:)
    kind: Kind
    targets: tuple[str, ...] = ()   # entity types a reference may point to
    vocab: str | None = None        # closed vocabulary name for Kind.VOCAB
    required: bool = False
    mentions_from_prose: bool = False  # entity links inside this prose count as mentions


@dataclass(frozen=True)
class EntityType:
    name: str        # value of the `type:` field
    directory: str   # folder under entities/
    prefix: str      # id prefix including the hyphen
    cls: str         # local name of the ontology class
    label: str
    fields: dict[str, Field] = field(default_factory=dict)


# The closed vocabularies of spec.md: value -> concept local name in mg:.
VOCABULARIES: dict[str, tuple[str, ...]] = {
    "status": ("active", "inactive", "historical", "unverified"),
    "confidence": ("high", "medium", "low"),
    "funder-type": ("foundation", "individual-donor", "grant-program", "other"),
    "publication-type": ("book", "report", "manifesto", "essay", "newsletter", "other"),
    "effect-type": (
        "earned-media", "legislation-draft", "legislation-enacted", "regulatory-action",
        "judicial-outcome", "corporate-behavior-change", "coalition-adoption", "public-mobilization",
    ),
}


def concept(vocab: str, value: str) -> str:
    """Local name of the concept for ``value`` in closed vocabulary ``vocab``."""
    return f"{vocab}-{value}"


ORG_TYPES = ("organization",)
PERSON = ("person",)

COMMON: dict[str, Field] = {f.name: f for f in (
    Field("id", "identifier", Kind.TEXT, required=True),
    Field("type", "type", Kind.TEXT, required=True),  # becomes rdf:type of the type's class
    Field("name", "name", Kind.TEXT, required=True),
    Field("status", "status", Kind.VOCAB, vocab="status"),
    Field("confidence", "confidence", Kind.VOCAB, vocab="confidence"),
    Field("tags", "tag", Kind.TAGS),
    Field("created", "created", Kind.DATE),
    Field("last_updated", "lastUpdated", Kind.DATE),
    Field("sources", "source", Kind.SOURCES),
)}


def _type(name: str, directory: str, prefix: str, cls: str, label: str, *fields: Field) -> EntityType:
    return EntityType(name, directory, prefix, cls, label, {**COMMON, **{f.name: f for f in fields}})


TYPES: dict[str, EntityType] = {t.name: t for t in (
    _type("organization", "organizations", "org-", "Organization", "Organization",
          Field("founded", "founded", Kind.DATE),
          Field("location", "location", Kind.TEXT),
          Field("website", "website", Kind.URL),
          Field("strategies", "strategy", Kind.REFS, ("strategy",)),
          Field("key_people", "keyPerson", Kind.REFS, PERSON),
          Field("board_and_advisors", "boardMemberOrAdvisor", Kind.REFS, PERSON),
          Field("related_orgs", "relatedOrganization", Kind.REFS, ORG_TYPES),
          Field("funders", "funder", Kind.REFS, ("funder",))),
    _type("local-group", "local-groups", "lg-", "LocalGroup", "Local Group",
          Field("founded", "founded", Kind.DATE),
          Field("location", "location", Kind.TEXT),
          Field("parent_org", "parentOrganization", Kind.REF, ORG_TYPES),
          Field("website_or_contact", "websiteOrContact", Kind.URL_OR_CONTACT),
          Field("key_people", "keyPerson", Kind.REFS, PERSON)),
    _type("campaign", "campaigns", "camp-", "Campaign", "Campaign",
          Field("start_date", "startDate", Kind.DATE),
          Field("end_date", "endDate", Kind.DATE_OR_ONGOING),
          Field("goals", "goals", Kind.TEXT, mentions_from_prose=True),
          Field("lead_orgs", "leadOrganization", Kind.REFS, ORG_TYPES),
          Field("participating_orgs", "participatingOrganization", Kind.REFS, ORG_TYPES),
          Field("events", "event", Kind.REFS, ("event",)),
          Field("strategies", "strategy", Kind.REFS, ("strategy",)),
          Field("outcomes", "outcomes", Kind.TEXT, mentions_from_prose=True)),
    _type("event", "events", "event-", "Event", "Event",
          Field("date", "date", Kind.DATE),
          Field("location", "location", Kind.TEXT),
          Field("event_type", "eventType", Kind.TEXT),
          Field("campaign", "partOfCampaign", Kind.REF, ("campaign",)),
          Field("participating_orgs", "participatingOrganization", Kind.REFS, ORG_TYPES),
          Field("participating_people", "participatingPerson", Kind.REFS, PERSON),
          Field("related_events", "relatedEvent", Kind.REFS, ("event",))),
    _type("strategy", "strategies", "strat-", "Strategy", "Strategy",
          Field("parent_strategy", "parentStrategy", Kind.REF, ("strategy",)),
          Field("related_strategies", "relatedStrategy", Kind.REFS, ("strategy",)),
          Field("effects", "effect", Kind.EFFECTS),
          Field("counter_read", "counterReading", Kind.TEXT, mentions_from_prose=True)),
    _type("message", "messages", "msg-", "Message", "Message",
          Field("origin", "origin", Kind.TEXT, mentions_from_prose=True),
          Field("originating_person", "originatingPerson", Kind.REF, PERSON),
          Field("originating_org", "originatingOrganization", Kind.REF, ORG_TYPES),
          Field("propagated_by_orgs", "propagatedBy", Kind.REFS, ORG_TYPES),
          Field("related_messages", "relatedMessage", Kind.REFS, ("message",))),
    _type("funder", "funders", "fund-", "Funder", "Funder",
          Field("funder_type", "funderType", Kind.VOCAB, vocab="funder-type"),
          Field("website", "website", Kind.URL),
          Field("funded_orgs", "funds", Kind.REFS, ORG_TYPES),
          Field("focus", "focus", Kind.TEXT, mentions_from_prose=True)),
    _type("person", "persons", "person-", "Person", "Person",
          Field("affiliations", "affiliation", Kind.AFFILIATIONS),
          Field("public_profiles", "publicProfile", Kind.PROFILES),
          Field("voice_entry", "voiceEntry", Kind.REF, ("voice",))),
    _type("voice", "voices", "voice-", "Voice", "Voice",
          Field("person_entry", "personEntry", Kind.REF, PERSON),
          Field("notable_for", "notableFor", Kind.TEXT, mentions_from_prose=True),
          Field("public_profiles", "publicProfile", Kind.PROFILES),
          Field("recent_works", "recentWork", Kind.REFS, ("publication",))),
    _type("publication", "publications", "pub-", "Publication", "Publication",
          Field("authors", "author", Kind.REFS, ("person", "voice")),
          Field("publisher", "publisher", Kind.REF_OR_TEXT, ORG_TYPES),
          Field("date", "publicationDate", Kind.DATE),
          Field("url", "url", Kind.URL),
          Field("publication_type", "publicationType", Kind.VOCAB, vocab="publication-type")),
)}

BY_PREFIX: dict[str, EntityType] = {t.prefix: t for t in TYPES.values()}
BY_DIRECTORY: dict[str, EntityType] = {t.directory: t for t in TYPES.values()}

# Properties used inside nested structures (not top-level fields).
SOURCE_FIELDS = {"url": "url", "last_checked": "lastChecked", "note": "note"}
AFFILIATION_FIELDS = {"org": "organization", "role": "role", "period": "period"}
PROFILE_FIELDS = {"platform": "platform", "url": "url"}
EFFECT_FIELDS = {"description": "description", "type": "effectType", "source": "effectSource",
                 "attribution_confidence": "attributionConfidence"}

# Reference kinds that point at entities.
REFERENCE_KINDS = (Kind.REF, Kind.REFS, Kind.REF_OR_TEXT)


@dataclass(frozen=True)
class Relation:
    """An entity-to-entity property, its materialised reverse, and whether it is symmetric."""

    prop: str
    inverse: str          # == prop when symmetric
    label: str
    inverse_label: str

    @property
    def symmetric(self) -> bool:
        return self.prop == self.inverse


RELATIONS: dict[str, Relation] = {r.prop: r for r in (
    Relation("strategy", "strategyAdoptedBy", "strategy", "strategy adopted by"),
    Relation("keyPerson", "keyPersonOf", "key person", "key person of"),
    Relation("boardMemberOrAdvisor", "boardMemberOrAdvisorOf", "board member or advisor",
             "board member or advisor of"),
    Relation("relatedOrganization", "relatedOrganization", "related organisation", "related organisation"),
    Relation("funder", "funds", "funder", "funds"),
    Relation("parentOrganization", "localGroup", "parent organisation", "local group"),
    Relation("leadOrganization", "leadsCampaign", "lead organisation", "leads campaign"),
    Relation("participatingOrganization", "organizationParticipatesIn", "participating organisation",
             "participates in"),
    Relation("event", "partOfCampaign", "event", "part of campaign"),
    Relation("participatingPerson", "personParticipatesIn", "participating person", "participates in"),
    Relation("relatedEvent", "relatedEvent", "related event", "related event"),
    Relation("parentStrategy", "subStrategy", "parent strategy", "sub-strategy"),
    Relation("relatedStrategy", "relatedStrategyOf", "related strategy", "named as related strategy by"),
    Relation("originatingPerson", "originatingPersonOf", "originating person", "originated message"),
    Relation("originatingOrganization", "originatingOrganizationOf", "originating organisation",
             "originated message"),
    Relation("propagatedBy", "propagates", "propagated by", "propagates message"),
    Relation("relatedMessage", "relatedMessageOf", "related message", "named as related message by"),
    Relation("voiceEntry", "personEntry", "voice entry", "person entry"),
    Relation("recentWork", "recentWorkOf", "recent work", "recent work of"),
    Relation("author", "authorOf", "author", "author of"),
    Relation("publisher", "publisherOf", "publisher", "publisher of"),
    Relation("affiliatedWith", "hasAffiliatedPerson", "affiliated with", "affiliated person"),
    Relation("mentions", "mentionedBy", "mentions", "mentioned by"),
)}
# Pairs where the reverse is itself a field of the schema: materialising the
# reverse gives the same triple the other side states.
for _r in list(RELATIONS.values()):
    if _r.inverse not in RELATIONS:
        RELATIONS[_r.inverse] = Relation(_r.inverse, _r.prop, _r.inverse_label, _r.label)


@dataclass(frozen=True)
class PairRule:
    """A canonical-direction rule of spec.md's table between two fields."""

    name: str
    a: tuple[str, str]     # (type, field)
    b: tuple[str, str]     # (type, field); for symmetric pairs a == b
    rule: str              # "both" (both sides required) or "a" (a canonical, b must stay empty)


PAIR_RULES: tuple[PairRule, ...] = (
    PairRule("Org ↔ Funder", ("organization", "funders"), ("funder", "funded_orgs"), "a"),
    PairRule("Org ↔ Org (related)", ("organization", "related_orgs"), ("organization", "related_orgs"), "both"),
    PairRule("Campaign ↔ Event", ("campaign", "events"), ("event", "campaign"), "both"),
    PairRule("Event ↔ Event (related)", ("event", "related_events"), ("event", "related_events"), "both"),
    PairRule("Person ↔ Voice", ("person", "voice_entry"), ("voice", "person_entry"), "both"),
)


def by_layout(path: str) -> tuple[str, EntityType] | None:
    """The id and type an entity file's place says, before it is read: ``entities/<the type's
    folder>/<id>.md``. (The file itself has the last word: its ``id`` and ``type`` fields.)"""
    parts = path.split("/")
    if len(parts) != 3 or not parts[2].endswith(".md"):
        return None
    t = BY_DIRECTORY.get(parts[1])
    return None if t is None else (parts[2][:-3], t)


def type_of_id(entity_id: str) -> EntityType | None:
    """The entity type whose prefix ``entity_id`` carries, if any."""
    for prefix, t in BY_PREFIX.items():
        if entity_id.startswith(prefix):
            return t
    return None


def field_for(type_name: str, name: str) -> Field | None:
    t = TYPES.get(type_name)
    return t.fields.get(name) if t else None


def any_field_named(name: str) -> Field | None:
    """A field of that name on any type (used for a field a type does not declare)."""
    for t in TYPES.values():
        if name in t.fields:
            return t.fields[name]
    return None
