//! Any bytes as an image file: decoding must end in an RGBA image or a named error, and a
//! decoded image must preprocess into a test ResNet's input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use resnet_lrp::image_io::decode_image;
use resnet_lrp::{Model, Preprocess};

static MODEL: OnceLock<Model> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let model = MODEL.get_or_init(|| {
        Model::from_onnx_bytes(include_bytes!("../../tests/fixtures/basic_bn.onnx")).expect("fixture loads")
    });
    let Ok(img) = decode_image(data) else { return };
    assert_eq!(img.data.len(), img.width * img.height * 4, "RGBA buffer size");
    model.preprocess(&img.data, img.width, img.height, &Preprocess::default()).expect("a decoded image preprocesses");
});
