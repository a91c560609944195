"""What the benchmarks ask about: four small documents of ../shared/corpus and realistic
questions on them, in Dutch and English."""

# Realistic questions about the 4 documents below; citizens cycle through them.
QUESTIONS = [
    "Waarom is de rente op een Tozo-lening op 2 procent vastgesteld?",
    "Wat vraagt de motie van de regering als banken zich niet aan de regels houden?",
    "Which GNU licences are compatible with the EUPL v1.2?",
    "Welke minister beantwoordde de vragen over de Tozo?",
    "Which authority supervises compliance with MiFIR and MiFID II?",
    "Hoe lang is de looptijd van de Tozo-lening voor bedrijfskapitaal?",
    "In which languages is the EUPL v1.2 legally valid?",
    "Wat vindt het kabinet van de herziening van MiFID?",
    "Wie hebben de motie over de banken ingediend?",
    "When did the Commission adopt the implementing decision on the EUPL?",
]
DOCS = ["nl_tk_aanhangsel_handelingen_2020-2021_3235_kamervragen_tozo.pdf",
        "nl_tk_kamerstuk_32545-143_motie.pdf",
        "en_eu_oj_commission_implementing_decision_2017-863_eupl.pdf",
        "nl_bnc-fiche_5_herziening_mifid_2022.pdf"]
