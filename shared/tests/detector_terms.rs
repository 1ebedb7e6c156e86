//! `pipeline::detector_terms`, the device's entry point to the fault detector, equals
//! its parts: the score's ELBO and `detect::raw_terms` of the image against the
//! decoder's pixels at z = mu. A device that computes it gets the host's bits.

use tinyvae_shared::detect::{raw_terms, Term};
use tinyvae_shared::model::Model;
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::rng::Rng;
use tinyvae_shared::testing::{synthetic_model, SyntheticShape};

#[test]
fn detector_terms_are_the_score_and_the_raw_terms_of_the_reconstruction() {
    let shape = SyntheticShape::default();
    let bytes = synthetic_model(7, shape).to_bytes().expect("builds");
    let model = Model::parse(&bytes).expect("parses");
    let mut ws = Workspace::new();
    let mut rng = Rng::new(3);
    let pixels = shape.width * shape.height;
    for _ in 0..20 {
        let image: Vec<u8> = (0..pixels).map(|_| rng.next_u32() as u8).collect();
        let terms = pipeline::detector_terms(&model, &mut ws, &image).expect("terms");
        let scored = pipeline::score_image(&model, &mut ws, &image, 0).expect("score");
        let expected = raw_terms(
            &image,
            &scored.reconstruction,
            shape.width,
            shape.height,
            scored.score.score,
        );
        assert_eq!(terms, expected);
        assert_eq!(terms[Term::Elbo as usize], scored.score.score);
    }
    // A wrong-sized image is refused, as by every request.
    assert!(pipeline::detector_terms(&model, &mut ws, &[0; 10]).is_err());
}
