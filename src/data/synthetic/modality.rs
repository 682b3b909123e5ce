//! Imaging modalities: how a task's modality name is recognised, and the palettes of the
//! colour modalities. Their backgrounds are drawn in `field`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Modality {
    Ultrasound,
    Mri,
    Ct,
    Xray,
    Oct,
    Pathology,
    Microscope,
    Dermatoscope,
    Rgb,
    Generic,
}

impl Modality {
    pub(super) fn parse(s: &str) -> Self {
        let norm: String = s
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match norm.as_str() {
            "ultrasound" | "us" | "sonography" => Modality::Ultrasound,
            "mri" | "mr" => Modality::Mri,
            "ct" => Modality::Ct,
            "xray" | "radiograph" | "radiography" | "cxr" => Modality::Xray,
            "oct" => Modality::Oct,
            "pathology" | "histopathology" | "histology" => Modality::Pathology,
            "microscope" | "microscopy" => Modality::Microscope,
            "dermatoscope" | "dermoscopy" | "dermatoscopy" => Modality::Dermatoscope,
            "rgb" | "endoscopy" | "photo" => Modality::Rgb,
            _ => Modality::Generic,
        }
    }

    /// Colour modalities: (background colour A, background colour B, object colour).
    pub(super) fn palette(self) -> Option<[[f32; 3]; 3]> {
        match self {
            // H&E: pink stroma, light purple cellular regions, haematoxylin-blue objects.
            Modality::Pathology => {
                Some([[0.94, 0.64, 0.80], [0.78, 0.52, 0.80], [0.22, 0.24, 0.62]])
            }
            // Stained smear: pale background, lavender cytoplasm, violet cells.
            Modality::Microscope => {
                Some([[0.90, 0.88, 0.80], [0.78, 0.72, 0.90], [0.52, 0.30, 0.78]])
            }
            // Skin tones and a brown lesion.
            Modality::Dermatoscope => {
                Some([[0.93, 0.74, 0.62], [0.80, 0.58, 0.46], [0.42, 0.25, 0.15]])
            }
            // Endoscopy: red-orange mucosa and a pale polyp.
            Modality::Rgb => Some([[0.88, 0.40, 0.36], [0.96, 0.64, 0.44], [0.96, 0.88, 0.62]]),
            _ => None,
        }
    }
}
