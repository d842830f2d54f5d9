"""The clinical-facts lexicon: which caption words state which fact (`medcap.data.facts` applies it).

A fact is one of `FACTS`; its value is one of `VALUES[fact]`. `PHRASES[fact]` maps a phrase (words as
`medcap.data.tokenize` gives them: lowercase, punctuation dropped, "T2-weighted" -> "t2 weighted"; "T2*"
is read as "t2star") to the value it states. Matching runs left to right over a caption's tokens, longest
phrase first, and a matched phrase consumes its words: "without contrast" states `without` (its
"contrast" does not also state `with`). A phrase of value "" only consumes its words: anatomy that
contains a fact word ("superior sagittal sinus" states no plane, "left ventricle" no region).

How a caption's matches become one value per fact (`medcap.data.facts.extract_facts`):
- modality: an explicit modality word decides; several: the first one, except that angiography gives
  way to CT or MR named anywhere (a CTA is a CT, an MRA an MR; "cta"/"mra" are in the table). With no
  modality word, an MR-only word (`IMPLIED_MR`: a sequence name "t1", "t2", "flair", "dwi", "adc",
  "stir", "swi"..., "gadolinium", "weighted", "signal", "hyperintense"...) states `mr`, else a CT-only
  word (`IMPLIED_CT`: "hypodense", "attenuation", "hounsfield", "window"...) states `ct`.
- mr_sequence, contrast, plane: the value when every phrase found states the same one; different
  values ("axial and coronal images", "T1 and T2", "with and without contrast") state none: the
  caption does not say which the image is. Contrast is what the study states ("contrast-enhanced CT",
  "post-gadolinium", "non-contrast"); an "enhancing lesion" describes the lesion and states nothing.
- region: the MedPix "Location Category" vocabulary (`REGIONS`). Each region phrase is a vote for its
  region; the region with most votes is stated; a tie between the top regions states none.
  Organs are filed as MedPix files them: the esophagus with the abdomen (gastrointestinal), the adrenals
  with the kidneys, ribs with the bones, the vertebral arteries with the head. Words naming more than
  one region ("cervical": spine, neck or cervix; "pelvis"; "lobe": brain, lung or liver; "head":
  the head or a femoral/humeral/pancreatic head; "aorta"; "muscle", "bone", "cortex", "iliac") vote only
  in a phrase that settles them ("cervical spine", "renal pelvis", "upper lobe", "femoral head").
- finding, location (the synthetic demo set): `medcap.data.synthetic_text`'s words; every finding named
  (sorted, joined by "+"), "none" for a caption that states a normal study; every "side level zone"
  location named (one side word and one level word in an "and"-separated clause), sorted, "+"-joined.

The tables were checked on MedPix-dev's own references (`benchmarks/facts_lexicon.py`: where a
reference states a fact, the share of images where it agrees with the label). Bump `LEXICON_VERSION`
whenever a table or a rule changes: metrics.json records it.
"""

from __future__ import annotations

LEXICON_VERSION = "1"

FACTS: tuple[str, ...] = ("modality", "mr_sequence", "contrast", "plane", "region", "finding", "location")
REGIONS: tuple[str, ...] = ("head", "spine and muscles", "thorax", "abdomen", "reproductive and urinary system")
VALUES: dict[str, tuple[str, ...]] = {
    "modality": ("ct", "mr", "radiograph", "ultrasound", "pet", "nuclear", "angiography", "fluoroscopy",
                 "mammography"),
    "mr_sequence": ("t1", "t2", "flair", "dwi", "adc", "swi-gre", "stir", "pd", "fiesta", "mra"),
    "contrast": ("with", "without"),
    "plane": ("axial", "coronal", "sagittal"),
    "region": REGIONS,
}


def _table(groups: dict[str, str]) -> dict[str, str]:
    """{value: "phrase, phrase, ..."} -> {phrase: value}."""
    return {p.strip(): value for value, phrases in groups.items() for p in phrases.split(",") if p.strip()}


_MODALITY = _table({
    "ct": (
        "ct, cts, cta, ctv, cect, ncct, hrct, mdct, ctpa, cat scan, computed tomography, computed tomographic, "
        "computerized tomography, ct scan, ct angiography, ct angiogram, ct venogram"
    ),
    "mr": "mr, mri, mris, mra, mrv, mrcp, fmri, magnetic resonance, mr angiography, mr angiogram, mr venogram",
    "radiograph": (
        "radiograph, radiographs, radiography, radiographic, x ray, xray, xr, cxr, kub, plain film, plain films, "
        "chest film, scout"
    ),
    "ultrasound": (
        "ultrasound, ultrasonography, ultrasonographic, sonogram, sonography, sonographic, doppler, echocardiogram, "
        "echocardiography"
    ),
    "pet": "pet, pet ct, fdg pet",
    "nuclear": "scintigraphy, scintigram, bone scan, spect, nuclear medicine, mibg",
    "angiography": "angiogram, angiography, angiographic, arteriogram, arteriography, venogram, dsa",
    "fluoroscopy": (
        "fluoroscopy, fluoroscopic, esophagram, barium swallow, barium enema, upper gi, vcug, hysterosalpingogram, "
        "cystogram, urethrogram"
    ),
    "mammography": "mammogram, mammography, mammographic",
})

_SEQUENCE = _table({
    "t1": "t1, t1w, t1wi, t1 weighted, t1 weighted image, t1c, mprage, spgr",
    "t2": "t2, t2w, t2wi, t2 weighted, haste, fse t2",
    "flair": "flair",
    "dwi": "dwi, diffusion, diffusion weighted, diffusion weighted imaging, dwis",
    "adc": "adc, adc map, apparent diffusion coefficient",
    "swi-gre": (
        "swi, gre, fgre, spgr gre, swan, mpgr, t2star, gradient echo, gradient recalled echo, "
        "susceptibility weighted"
    ),
    "stir": "stir",
    "pd": "pd, pdw, proton density, pd weighted",
    "fiesta": "fiesta, ciss, true fisp, bssfp",
    "mra": "mra, mr angiography, mr angiogram, tof, time of flight",
    # findings seen on DWI and ADC alike: consumed, no sequence stated
    "": "restricted diffusion, reduced diffusion, diffusion restriction",
})

_CONTRAST = _table({
    "with": (
        "contrast, contrasted, with contrast, post contrast, postcontrast, contrast enhanced, enhanced, cect, "
        "gadolinium, gd, gad, post gadolinium, post gad, postgadolinium, iv contrast, t1c, cta, arterial phase, "
        "venous phase, portal venous, delayed phase"
    ),
    "without": (
        "noncontrast, non contrast, without contrast, no contrast, unenhanced, non enhanced, nonenhanced, "
        "precontrast, pre contrast, ncct, plain ct, pre gadolinium, pregadolinium, non gadolinium, w o contrast, "
        "wo contrast, prior to contrast, before contrast, prior to gadolinium, before gadolinium, "
        "prior to the administration of gadolinium, prior to the administration of contrast"
    ),
})

_PLANE = _table({
    "axial": (
        "axial, axially, transaxial, axial plane, transverse image, transverse images, transverse plane, "
        "transverse section, transverse sections, transverse view, transverse scan, transverse ct, transverse mr, "
        "transverse mri, transverse ultrasound, transverse sonogram, transverse t1, transverse t2"
    ),
    "coronal": "coronal, coronally, coronals",
    "sagittal": "sagittal, sagittally, sagital, saggital, saggittal",
    # anatomy named with a plane word: consumed, states no plane
    "": (
        "sagittal sinus, sagittal sinuses, sagittal suture, sagittal band, coronal suture, coronal ligament, "
        "intra axial, extra axial, axial skeleton, axial load, axial loading"
    ),
})

_REGION = _table({
    "head": (
        "head and neck, brain, brains, cerebral cortex, vertebral artery, vertebral arteries, optic disc, "
        "optic disk, rectus muscle, rectus muscles, extraocular muscle, extraocular muscles, longus colli, masseter, "
        "pterygoid, temporalis, cerebral, cerebrum, cerebellum, cerebellar, cerebellopontine, cortical gray, "
        "gray matter, grey matter, white matter, periventricular, ventricle, ventricles, lateral ventricle, "
        "lateral ventricles, fourth ventricle, third ventricle, intraventricular, frontal lobe, temporal lobe, "
        "parietal lobe, occipital lobe, frontal lobes, frontal horn, frontal bone, parietal, occipital, temporal, "
        "pons, pontine, medulla, midbrain, brainstem, brain stem, thalamus, thalamic, hypothalamus, basal ganglia, "
        "caudate, putamen, globus pallidus, hippocampus, hippocampal, corpus callosum, sella, sellar, suprasellar, "
        "pituitary, orbit, orbits, orbital, globe, globes, optic, ocular, eye, retro orbital, extraocular, lens, "
        "sinus, sinuses, maxillary, ethmoid, sphenoid, frontal sinus, mastoid, nasal, nasopharynx, nasopharyngeal, "
        "oropharynx, pharynx, pharyngeal, larynx, laryngeal, skull, calvarium, calvarial, cranial, intracranial, "
        "cranium, skull base, subdural, subarachnoid, meninges, meningeal, meningioma, glioma, glioblastoma, "
        "astrocytoma, ependymoma, medulloblastoma, craniopharyngioma, schwannoma, acoustic, cistern, cisterns, "
        "sulci, gyri, hemisphere, hemispheres, infarct, mca, aca, pca, ica, carotid, circle of willis, "
        "basilar artery, vertebrobasilar, dural sinus, sagittal sinus, transverse sinus, sigmoid sinus, neck, face, "
        "facial, mandible, mandibular, maxilla, jaw, tongue, parotid, submandibular, salivary, thyroid, tonsil, "
        "tonsillar, ear, cochlea, cochlear, temporal bone, petrous, internal auditory canal, auditory, zygomatic, "
        "teeth, tooth, dental, hydrocephalus, encephalitis, cerebritis, neck mass, cervical lymph, "
        "cervical lymph node"
    ),
    "spine and muscles": (
        "femoral head, humeral head, radial head, iliac wing, iliac bone, iliac crest, rib, ribs, spine, spinal, "
        "spinal cord, cord, vertebra, vertebrae, vertebral, vertebral body, disc, discs, disk, intervertebral, "
        "lumbar, sacrum, sacral, coccyx, thoracic spine, cervical spine, lumbar spine, thoracic cord, cervical cord, "
        "conus, cauda equina, thecal sac, epidural, facet, spinous, paraspinal, knee, femur, femoral, tibia, tibial, "
        "fibula, fibular, ankle, foot, feet, toe, calcaneus, calcaneal, talus, hip, hips, acetabulum, acetabular, "
        "shoulder, humerus, humeral, elbow, wrist, hand, finger, thumb, radius, ulna, ulnar, scapula, clavicle, "
        "patella, patellar, muscular, tendon, tendons, ligament, ligaments, meniscus, menisci, meniscal, acl, pcl, "
        "cruciate, rotator cuff, supraspinatus, labrum, labral, glenoid, quadriceps, hamstring, thigh, leg, legs, "
        "calf, arm, forearm, cartilage, marrow, bone marrow, osteosarcoma, osteomyelitis, osteochondroma, condyle, "
        "condylar, metaphysis, diaphysis, epiphysis, sacroiliac, ilium, pubic, ischium, plantar, achilles, synovial, "
        "joint, musculoskeletal, soft tissue sarcoma"
    ),
    "thorax": (
        "thoracic aorta, aortic arch, aortic root, aortic valve, right atrium, left atrium, thorax, thoracic, chest, "
        "lung, lungs, pulmonary, pleura, pleural, mediastinum, mediastinal, heart, cardiac, pericardial, "
        "pericardium, myocardial, myocardium, left ventricular, right ventricular, atrial, coronary, "
        "ascending aorta, descending aorta, trachea, tracheal, bronchus, bronchi, bronchial, bronchiectasis, hilar, "
        "hilum, hila, upper lobe, lower lobe, middle lobe, lingula, rul, rll, rml, lul, lll, pneumothorax, "
        "pneumonia, emphysema, empyema, pleural effusion, ground glass, airspace, breast, breasts, axilla, axillary, "
        "thymus, thymic, azygos, pulmonary artery, pulmonary embolism, sternum, sternal, diaphragm, "
        "pneumomediastinum, interstitial lung"
    ),
    "abdomen": (
        "pancreatic head, head of the pancreas, esophagus, esophageal, abdomen, abdominal, abdominopelvic, liver, "
        "hepatic, intrahepatic, spleen, splenic, pancreas, pancreatic, stomach, gastric, bowel, small bowel, colon, "
        "colonic, duodenum, duodenal, jejunum, jejunal, ileum, ileal, cecum, cecal, appendix, appendiceal, "
        "appendicitis, gallbladder, gall bladder, biliary, bile duct, bile ducts, common bile duct, cholecystitis, "
        "mesentery, mesenteric, peritoneal, peritoneum, intraperitoneal, retroperitoneal, retroperitoneum, omentum, "
        "omental, portal vein, rectum, rectal, sigmoid, diverticulitis, abdominal aorta, inferior vena cava, ivc, "
        "celiac, sma, hepatocellular, cirrhosis, ascites, pneumoperitoneum, intussusception, volvulus, hernia"
    ),
    "reproductive and urinary system": (
        "adrenal, adrenals, kidney, kidneys, renal, renal pelvis, renal artery, ureter, ureters, ureteral, ureteric, "
        "bladder, urinary bladder, urinary, prostate, prostatic, uterus, uterine, endometrium, endometrial, "
        "myometrium, ovary, ovaries, ovarian, adnexa, adnexal, cervix, testis, testes, testicle, testicular, "
        "scrotum, scrotal, epididymis, epididymal, penis, penile, vagina, vaginal, urethra, urethral, "
        "seminal vesicle, seminal vesicles, placenta, placental, fetus, fetal, pregnancy, gestational, "
        "hydronephrosis, pyelonephritis, nephrolithiasis, fibroid, fibroids, leiomyoma"
    ),
    # named in more than one region: consumed, no vote ("left ventricle" of the heart or the brain)
    "": "left ventricle, right ventricle",
})

PHRASES: dict[str, dict[str, str]] = {"modality": _MODALITY, "mr_sequence": _SEQUENCE, "contrast": _CONTRAST,
                                      "plane": _PLANE, "region": _REGION}

# Words only MR states (imply `mr` when no modality word is present) and words only CT states.
IMPLIED_MR: frozenset[str] = frozenset({*_SEQUENCE, "gadolinium", "gd", "gad", "weighted", "signal", "signal intensity",
                                        "hyperintense", "hypointense", "hyperintensity", "hypointensity",
                                        "hyperintensities", "isointense", "fat suppressed", "fat saturated",
                                        "fat sat", "post gadolinium", "post gad", "pulse sequence"})
IMPLIED_CT: frozenset[str] = frozenset({"hypodense", "hyperdense", "isodense", "hypodensity", "hyperdensity",
                                        "hypoattenuating", "hyperattenuating", "attenuation", "hounsfield", "hu",
                                        "window", "bone window", "lung window", "soft tissue window"})

# MedPix `Description.Modality` (lowercase, spaces squeezed) -> (mr_sequence, contrast); None: not stated.
MEDPIX_DETAIL: dict[str, tuple[str | None, str | None]] = {
    "ct - noncontrast": (None, "without"),
    "ct w/contrast (iv)": (None, "with"),
    "ct - gi & iv contrast": (None, "with"),
    "ct - gi contrast": (None, "with"),
    "cta - ct angiography": (None, "with"),
    "mr - t2 weighted": ("t2", None),
    "mr - t1w - noncontrast": ("t1", "without"),
    "mr - t1w w/gadolinium": ("t1", "with"),
    "mr - t1w w/gd (fat suppressed)": ("t1", "with"),
    "mr - flair": ("flair", None),
    "mra - mr angiography/venography": ("mra", None),
    "mr t2* gradient,gre,mpgr,swan,swi": ("swi-gre", None),
    "mr - dwi diffusion weighted": ("dwi", None),
    "mr - adc map (app diff coeff)": ("adc", None),
    "mr - pdw proton density": ("pd", None),
    "mr - stir": ("stir", None),
    "mr - fiesta": ("fiesta", None),
}
# Label text -> value for the dataset label columns (MedPix `Type`, `Plane`; the synthetic set's `modality`).
LABEL_VALUES: dict[str, dict[str, str]] = {
    "modality": {"ct": "ct", "mr": "mr", "mri": "mr", "xr": "radiograph", "cr": "radiograph", "dx": "radiograph",
                 "us": "ultrasound", "nm": "nuclear", "pt": "pet", "mg": "mammography", "rf": "fluoroscopy",
                 "xa": "angiography"},
    "plane": {"axial": "axial", "transverse": "axial", "coronal": "coronal", "sagittal": "sagittal"},
}
