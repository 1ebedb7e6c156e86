//! ONNX export of the float encoder and decoder, written from Rust with the protobuf
//! types tract-onnx exposes, and checked by running the written files in tract.
//!
//! * `encoder.onnx`: input `x` `[batch, pixels]` in [0, 1]; outputs `mu` and `logvar`
//!   `[batch, latent]`.
//! * `decoder.onnx`: input `z` `[batch, latent]`; output `image` `[batch, pixels]`, the
//!   Bernoulli means `sigmoid(logits)`.
//!
//! Each dense layer is one `Gemm` (transB = 1, PyTorch's weight layout) followed by
//! `Relu` where the model has one; the batch dimension is symbolic. IR version 8 and
//! opset 17 load in tract, onnxruntime and Netron.

use std::path::Path;

use prost::Message;
use tract_onnx::pb::{
    self, tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, AttributeProto,
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use tract_onnx::prelude::*;

use crate::model::FloatLayer;

/// Errors from writing or checking ONNX files.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The layers do not form the expected network.
    #[error("cannot export: {0}")]
    Shape(String),
    /// Writing the file failed.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file (or its temporary sibling).
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// tract could not load or run the file.
    #[error("tract could not run {path}: {detail}")]
    Tract {
        /// The file.
        path: String,
        /// tract's message.
        detail: String,
    },
}

fn tensor(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

fn value_info(name: &str, width: usize) -> ValueInfoProto {
    let dim = |value| tract_onnx::pb::tensor_shape_proto::Dimension {
        value: Some(value),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: vec![
                        dim(dimension::Value::DimParam("batch".to_string())),
                        dim(dimension::Value::DimValue(width as i64)),
                    ],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: op.to_string(),
        name: name.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        ..Default::default()
    }
}

fn gemm(name: &str, input: &str, output: &str) -> NodeProto {
    let weight = format!("{name}.weight");
    let bias = format!("{name}.bias");
    let mut n = node("Gemm", name, &[input, &weight, &bias], output);
    n.attribute.push(AttributeProto {
        name: "transB".to_string(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: 1,
        ..Default::default()
    });
    n
}

/// Appends `layer` as Gemm (+ Relu) reading `input`; returns the output's name.
fn push_dense(graph: &mut GraphProto, name: &str, layer: &FloatLayer, input: &str) -> String {
    graph.initializer.push(tensor(
        &format!("{name}.weight"),
        &[layer.out_dim, layer.in_dim],
        &layer.weight,
    ));
    graph.initializer.push(tensor(
        &format!("{name}.bias"),
        &[layer.out_dim],
        &layer.bias,
    ));
    let linear = format!("{name}.out");
    graph.node.push(gemm(name, input, &linear));
    if layer.relu {
        let act = format!("{name}.relu");
        graph
            .node
            .push(node("Relu", &format!("{name}_relu"), &[&linear], &act));
        act
    } else {
        linear
    }
}

fn model_proto(graph: GraphProto, doc: &str) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        producer_name: "tinyvae".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        doc_string: doc.to_string(),
        graph: Some(graph),
        ..Default::default()
    }
}

/// Builds the encoder graph: hidden layers, then two Gemm heads for mu and logvar
/// (the head's first `latent` rows and its last `latent` rows).
pub fn encoder_model(layers: &[FloatLayer], latent: usize) -> Result<ModelProto, OnnxError> {
    let (head, hidden) = layers
        .split_last()
        .ok_or_else(|| OnnxError::Shape("encoder has no layers".into()))?;
    if head.out_dim != 2 * latent {
        return Err(OnnxError::Shape(format!(
            "encoder head has {} outputs, a VAE with latent {latent} needs {}",
            head.out_dim,
            2 * latent
        )));
    }
    let pixels = layers[0].in_dim;
    let mut graph = GraphProto {
        name: "tinyvae_encoder".to_string(),
        input: vec![value_info("x", pixels)],
        output: vec![value_info("mu", latent), value_info("logvar", latent)],
        ..Default::default()
    };
    let mut current = "x".to_string();
    for (i, layer) in hidden.iter().enumerate() {
        current = push_dense(&mut graph, &format!("enc{i}"), layer, &current);
    }
    let rows = head.in_dim * latent;
    for (name, range, bias) in [
        ("mu", 0..rows, 0..latent),
        ("logvar", rows..2 * rows, latent..2 * latent),
    ] {
        let part = FloatLayer {
            in_dim: head.in_dim,
            out_dim: latent,
            weight: head.weight[range].to_vec(),
            bias: head.bias[bias].to_vec(),
            relu: false,
        };
        let out = push_dense(&mut graph, &format!("head_{name}"), &part, &current);
        graph.node.push(node("Identity", name, &[&out], name));
    }
    Ok(model_proto(
        graph,
        "tinyvae VAE encoder: x in [0,1] -> (mu, logvar) of q(z|x)",
    ))
}

/// Builds the decoder graph: dense layers, then a Sigmoid giving pixel means.
pub fn decoder_model(layers: &[FloatLayer]) -> Result<ModelProto, OnnxError> {
    let first = layers
        .first()
        .ok_or_else(|| OnnxError::Shape("decoder has no layers".into()))?;
    let pixels = layers[layers.len() - 1].out_dim;
    let mut graph = GraphProto {
        name: "tinyvae_decoder".to_string(),
        input: vec![value_info("z", first.in_dim)],
        output: vec![value_info("image", pixels)],
        ..Default::default()
    };
    let mut current = "z".to_string();
    for (i, layer) in layers.iter().enumerate() {
        current = push_dense(&mut graph, &format!("dec{i}"), layer, &current);
    }
    graph
        .node
        .push(node("Sigmoid", "image", &[&current], "image"));
    Ok(model_proto(
        graph,
        "tinyvae VAE decoder: z -> sigmoid(logits), the Bernoulli pixel means",
    ))
}

/// Writes `model` to `path` atomically (temporary file, then rename).
pub fn write(model: &ModelProto, path: &Path) -> Result<(), OnnxError> {
    tinyvae_shared::model_file::write_atomic(path, &model.encode_to_vec())
        .map_err(|(path, source)| OnnxError::Write { path, source })
}

/// Loads `path` with tract and runs it on `input` (`rows x width`, row major);
/// returns each output as a row-major `Vec`.
pub fn run_tract(
    path: &Path,
    input: &[f32],
    rows: usize,
    width: usize,
) -> Result<Vec<Vec<f32>>, OnnxError> {
    let fail = |e: TractError| OnnxError::Tract {
        path: path.display().to_string(),
        detail: format!("{e:#}"),
    };
    let plan = tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|m| m.with_input_fact(0, f32::fact([rows, width]).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(fail)?;
    let tensor = Tensor::from_shape(&[rows, width], input).map_err(fail)?;
    let outputs = plan.run(tvec!(tensor.into())).map_err(fail)?;
    outputs
        .iter()
        .map(|t| {
            t.to_plain_array_view::<f32>()
                .map(|view| view.iter().copied().collect())
                .map_err(fail)
        })
        .collect()
}
